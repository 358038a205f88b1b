#!/usr/bin/env node
// One wasm matmul kernel on its own: --rows x --cols weights of --dtype against --T tokens, one thread, 25 calls;
// prints the min and median ms and a checksum of the output (equal checksums: the same outputs, for kernel changes
// that must not change any arithmetic).
//
//   node scripts/bench-matmul.mjs [--dtype q8_0] [--T 64] [--rows 5632] [--cols 2048]
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const { DTYPES, dtypeInfo, quantize, createWasmBackend } = await import(join(root, 'packages/kernels/dist/index.js'))

const o = { dtype: 'q8_0', T: 64, rows: 5632, cols: 2048 }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]
  const v = () => { if (argv[i + 1] === undefined) { console.error(`missing value for ${a}`); process.exit(2) } return argv[++i] }
  if (a === '--dtype') o.dtype = v()
  else if (a === '--T') o.T = Number(v())
  else if (a === '--rows') o.rows = Number(v())
  else if (a === '--cols') o.cols = Number(v())
  else { console.error(`unknown argument ${a}`); process.exit(2) }
}
if (!DTYPES.includes(o.dtype)) { console.error(`--dtype takes one of ${DTYPES.join(', ')}`); process.exit(2) }
for (const k of ['T', 'rows', 'cols']) if (!Number.isInteger(o[k]) || o[k] < 1) { console.error(`--${k} takes an integer >= 1`); process.exit(2) }
if (o.cols % dtypeInfo(o.dtype).blockSize !== 0) { console.error(`--cols takes a multiple of ${dtypeInfo(o.dtype).blockSize} for ${o.dtype}`); process.exit(2) }

const b = await createWasmBackend({ threads: 1 })
const src = Float32Array.from({ length: o.rows * o.cols }, (_, i) => Math.sin(i * 0.37))
const w = b.prepareWeight({ name: 'w', dtype: o.dtype, shape: [o.rows, o.cols], data: quantize(o.dtype, src, [o.rows, o.cols]) })
const x = Float32Array.from({ length: o.T * o.cols }, (_, i) => Math.cos(i * 0.91))
const out = new Float32Array(o.T * o.rows)
const times = []
for (let i = 0; i < 25; i++) {
  const t0 = performance.now()
  b.matmul(out, w, x, o.T)
  times.push(performance.now() - t0)
}
times.sort((p, q) => p - q)
let h = 0
for (let i = 0; i < out.length; i += 97) h = (h * 31 + Math.round(out[i] * 1e3)) | 0
console.log(`${o.dtype} ${o.rows} x ${o.cols}, T = ${o.T}, 1 thread: min ${times[0].toFixed(2)} ms, median ${times[12].toFixed(2)} ms; checksum ${h}`)
await b.close()
