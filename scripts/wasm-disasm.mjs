#!/usr/bin/env node
// The x86-64 code V8's optimizing compiler (TurboFan) makes of one wasm kernel, for kernel work on a machine with no
// CPU performance counters (this VM has none): it runs the kernel on a weight of --rows x --cols for --T tokens in a
// child Node with --perf-prof --no-liftoff, reads the function's machine code from the jitdump file V8 writes
// (perf's documented format: a header, then records; JIT_CODE_LOAD (id 0) holds the name and the code bytes), and
// disassembles it with objdump (binutils). It prints the code, then the instruction count and how many instructions
// touch the stack frame anywhere in the function (spills and reloads of registers: what made larger loop bodies slower
// here; look for them inside the hot loop).
//
//   node scripts/wasm-disasm.mjs --dtype q8_0 [--rows 5632] [--cols 2048] [--T 1] [--function matmul_q8_0]
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const o = { dtype: 'q8_0', rows: 5632, cols: 2048, T: 1, fn: undefined }
const argv = process.argv.slice(2)
const role = argv[0] === '--run' ? 'run' : 'main'
for (let i = role === 'run' ? 1 : 0; i < argv.length; i++) {
  const a = argv[i]
  const v = () => { if (argv[i + 1] === undefined) { console.error(`missing value for ${a}`); process.exit(2) } return argv[++i] }
  if (a === '--dtype') o.dtype = v()
  else if (a === '--rows') o.rows = Number(v())
  else if (a === '--cols') o.cols = Number(v())
  else if (a === '--T') o.T = Number(v())
  else if (a === '--function') o.fn = v()
  else { console.error(`unknown argument ${a}`); process.exit(2) }
}
for (const [flag, value] of [['--rows', o.rows], ['--cols', o.cols], ['--T', o.T]]) {
  if (!Number.isInteger(value) || value < 1) { console.error(`${flag} takes an integer >= 1`); process.exit(2) }
}
const { DTYPES, dtypeInfo, quantize, createWasmBackend } = await import(join(root, 'packages/kernels/dist/index.js'))
if (!DTYPES.includes(o.dtype)) { console.error(`--dtype takes one of ${DTYPES.join(', ')}`); process.exit(2) }
const { blockSize } = dtypeInfo(o.dtype)
if (o.cols % blockSize !== 0) { console.error(`--cols takes a multiple of ${blockSize} for ${o.dtype}`); process.exit(2) }
const fn = o.fn ?? `matmul_${o.dtype}`

if (role === 'run') {
  // the child: run the kernel often enough for TurboFan's code to be the one in the dump (--no-liftoff: no other tier)
  const b = await createWasmBackend({ threads: 1 })
  const src = Float32Array.from({ length: o.rows * o.cols }, (_, i) => Math.sin(i * 0.37))
  const w = b.prepareWeight({ name: 'w', dtype: o.dtype, shape: [o.rows, o.cols], data: quantize(o.dtype, src, [o.rows, o.cols]) })
  const x = Float32Array.from({ length: o.T * o.cols }, (_, i) => Math.cos(i * 0.91))
  const out = new Float32Array(o.T * o.rows)
  for (let i = 0; i < 5; i++) b.matmul(out, w, x, o.T)
  await b.close()
  process.exit(0)
}

/** function index (in the index space V8's names use, imports first) of each exported function (export section, id 7) */
function exportIndices (bytes) {
  const map = new Map()
  let p = 8
  const uleb = () => { let r = 0; let s = 0; for (;;) { const c = bytes[p++]; r |= (c & 0x7f) << s; if ((c & 0x80) === 0) return r >>> 0; s += 7 } }
  while (p < bytes.length) {
    const id = bytes[p++]
    const size = uleb()
    const end = p + size
    if (id === 7) {
      for (let n = uleb(); n > 0; n--) {
        const len = uleb()
        const name = new TextDecoder().decode(bytes.subarray(p, p + len))
        p += len
        const kind = bytes[p++]
        const index = uleb()
        if (kind === 0) map.set(name, index)
      }
    }
    p = end
  }
  return map
}

const wasm = readFileSync(join(root, 'packages/kernels/dist/wasm/kernels.wasm'))
const map = exportIndices(wasm)
const index = map.get(fn)
if (index === undefined) { console.error(`kernels.wasm exports no function ${fn}`); process.exit(2) }

const dir = mkdtempSync(join(tmpdir(), 'wasm-disasm-'))
try {
  const run = spawnSync(process.execPath, ['--perf-prof', '--no-liftoff', fileURLToPath(import.meta.url), '--run', ...argv], { cwd: dir, stdio: 'inherit' })
  if (run.status !== 0) throw new Error('the kernel run failed')
  const dump = readdirSync(dir).find(f => /^jit-\d+\.dump$/.test(f))
  if (dump === undefined) throw new Error('V8 wrote no jitdump file (--perf-prof)')
  const data = readFileSync(join(dir, dump))
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  let code
  let addr = 0n
  for (let p = view.getUint32(8, true); p + 16 <= data.length;) {
    const id = view.getUint32(p, true)
    const size = view.getUint32(p + 4, true)
    if (size === 0) break
    if (id === 0) {
      const codeAddr = view.getBigUint64(p + 24, true)
      const codeSize = Number(view.getBigUint64(p + 32, true))
      const nameStart = p + 56
      const nameEnd = data.indexOf(0, nameStart)
      const name = data.subarray(nameStart, nameEnd).toString()
      // V8 names wasm code "wasm-function[N]-N-turbofan"; the last such record is the code that ran
      if (name.includes(`wasm-function[${index}]`) && name.includes('turbofan')) {
        code = data.subarray(nameEnd + 1, nameEnd + 1 + codeSize)
        addr = codeAddr
      }
    }
    p += size
  }
  if (code === undefined) throw new Error(`no TurboFan code for ${fn} (wasm-function[${index}]) in the dump`)
  const bin = join(dir, 'code.bin')
  writeFileSync(bin, code)
  const dis = spawnSync('objdump', ['-D', '-b', 'binary', '-mi386:x86-64', `--adjust-vma=0x${addr.toString(16)}`, bin], { encoding: 'utf8' })
  if (dis.status !== 0) throw new Error(`objdump failed (binutils installed?): ${dis.stderr ?? dis.error}`)
  const lines = dis.stdout.split('\n').filter(l => /^\s+[0-9a-f]+:\t/.test(l))
  console.log(lines.map(l => l.split('\t').slice(2).join('\t')).join('\n'))
  const frame = lines.filter(l => /-0x[0-9a-f]+\(%rbp\)/.test(l)).length
  console.log(`\n${fn} (wasm-function[${index}]), ${o.dtype} ${o.rows} x ${o.cols}, T = ${o.T}: ${code.length} bytes, ${lines.length} instructions, ${frame} touch the stack frame`)
} catch (err) {
  // the temporary directory goes in `finally` (process.exit would skip it)
  console.error(err.message)
  process.exitCode = 1
} finally {
  rmSync(dir, { recursive: true, force: true })
}
