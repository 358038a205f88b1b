#!/usr/bin/env node
// WebGPU's fixed cost per step on this machine's adapter (lavapipe without a GPU): the time of one submitted step of N
// tiny dispatches (adds of 1024 values, so the kernels' own work is nothing), with and without a readback, for N from
// 1 to 600 (a decode step of the 8-layer TinyLlama-shaped model records 152). Build first.
//   node scripts/bench-webgpu-dispatch.mjs
import { createWebGpuExecutor, useLocalLavapipe } from '../packages/kernels/dist/index.js'

useLocalLavapipe()
const executor = await createWebGpuExecutor()
const k = executor.kernels
console.log(`adapter: ${executor.name}`)
const a = k.storage(1024)
const b = k.storage(1024)
for (const readback of [true, false]) {
  for (const n of [1, 16, 64, 152, 300, 600]) {
    const times = []
    for (let r = 0; r < 40; r++) {
      const enc = k.encoder()
      for (let i = 0; i < n; i++) enc.add({ buffer: a }, { buffer: b }, 1024)
      const t = performance.now()
      await enc.submit(readback ? { buffer: a, floats: 1024 } : undefined)
      times.push(performance.now() - t)
    }
    times.sort((x, y) => x - y)
    const med = times[times.length >> 1]
    console.log(`${readback ? 'readback' : 'no readback'}: ${String(n).padStart(4)} dispatches: median ${med.toFixed(3)} ms (${(med / n * 1000).toFixed(1)} us per dispatch)`)
  }
}
process.exit(0)
