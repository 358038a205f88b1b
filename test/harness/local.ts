/**
 * The backend a swarm computes with by default: nodes (`swarm-node serve`) and clients (`Swarm.model`, hence
 * `swarm generate --bootstrap`) both pick 'auto' (WebAssembly SIMD where it supports the op and dtype, the CPU
 * reference elsewhere), as `swarm generate --local` does. A local reference run on these ops computes exactly what
 * the swarm computes; on the CPU reference alone it could differ in the last bits and flip near-tied argmaxes of
 * random test models.
 */
import { selectBackend, type LoadOptions } from '@swarm/kernels'

export async function swarmDefaultOps (): Promise<LoadOptions> {
  const selected = await selectBackend('auto', { threads: 1 })
  return { ops: selected.ops, threads: selected.threads }
}
