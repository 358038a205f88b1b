import { READ_BANDWIDTH_SHADER } from './shaders.js'
import type { GpuKernels } from './kernels.js'

/** Streams a `bytes`-sized storage buffer through a kernel `repeats` times; returns GB/s (1e9 bytes per second). */
export async function measureReadBandwidth (kernels: GpuKernels, bytes = 64 << 20, repeats = 5): Promise<number> {
  const device = kernels.device
  const size = Math.min(bytes, device.limits.maxStorageBufferBindingSize) & ~15
  const src = kernels.storage(size / 4, 'bandwidth source')
  const sink = kernels.storage(4, 'bandwidth sink')
  const module = device.createShaderModule({ code: READ_BANDWIDTH_SHADER })
  const pipeline = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } })
  const bindGroup = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: src } }, { binding: 1, resource: { buffer: sink } }] })
  const run = async (): Promise<void> => {
    const enc = device.createCommandEncoder()
    const pass = enc.beginComputePass()
    pass.setPipeline(pipeline)
    pass.setBindGroup(0, bindGroup)
    pass.dispatchWorkgroups(Math.min(1024, Math.ceil(size / 16 / 256)))
    pass.end()
    device.queue.submit([enc.finish()])
    await device.queue.onSubmittedWorkDone()
  }
  try {
    await run() // warm-up
    const started = performance.now()
    for (let i = 0; i < repeats; i++) await run()
    return size * repeats / ((performance.now() - started) / 1000) / 1e9
  } finally {
    src.destroy()
    sink.destroy()
  }
}
