#!/usr/bin/env node
// WebGPU kernel figures on this machine's adapter (lavapipe without a GPU): streaming read bandwidth, then matvec
// (decode) per weight dtype as effective GB/s of weight bytes read, beside the read bandwidth as the anchor, and a
// prefill matmul as GFLOP/s. Usage: node scripts/bench-webgpu.mjs [rows cols] (default 2048 5632). Build first.
import { createWebGpuExecutor, measureReadBandwidth, quantize, useLocalLavapipe } from '../packages/kernels/dist/index.js'

const [rows, cols] = process.argv.length >= 4 ? [Number(process.argv[2]), Number(process.argv[3])] : [2048, 5632]
useLocalLavapipe()
const executor = await createWebGpuExecutor()
const k = executor.kernels
console.log(`adapter: ${executor.name}`)
console.log(`streaming read (64 MiB):      ${(await measureReadBandwidth(k)).toFixed(2)} GB/s`)

const src = new Float32Array(rows * cols).map((_, i) => Math.sin(i * 12.9898) * 0.5)
async function time (record, repeats) {
  const once = async () => { const enc = k.encoder(); record(enc); await enc.submit() }
  await once()
  const started = performance.now()
  for (let i = 0; i < repeats; i++) await once()
  return (performance.now() - started) / repeats / 1000
}
for (const dtype of ['f32', 'f16', 'q8_0', 'q4_0', 'q4_K', 'q6_K']) {
  const data = quantize(dtype, src, [rows, cols])
  const w = executor.uploadWeight({ name: dtype, dtype, shape: [rows, cols], data })
  const T = 16
  const x = k.storage(T * cols)
  const y = k.storage(T * rows)
  const buffers = { xq8: k.storage(T * cols), xd8: k.storage(T * cols / 32), xqK: k.storage(T * cols), xdK: k.storage(T * cols / 256) }
  const { activationFor } = await import('../packages/kernels/dist/webgpu/executor.js')
  const run = (n) => (enc) => { const a = activationFor(enc, { buffer: x }, n, cols, [w], buffers); enc.matmul({ buffer: y }, w, a(w), n) }
  const decode = await time(run(1), 5)
  const prefill = await time(run(T), 2)
  console.log(`${dtype.padEnd(5)} ${rows}x${cols} (${(data.byteLength / 2 ** 20).toFixed(1)} MiB): matvec ${(data.byteLength / decode / 1e9).toFixed(2)} GB/s ` +
    `(${(decode * 1000).toFixed(1)} ms), matmul T=${T} ${(2 * rows * cols * T / prefill / 1e9).toFixed(2)} GFLOP/s`)
  for (const b of [...w.chunks.map(c => c.buffer), x, y, ...Object.values(buffers)]) b.destroy()
}
executor.close()
process.exit(0)
