/**
 * Local reference runs for the swarm tests.
 *
 * The backend a swarm computes with by default: nodes (`swarm-node serve`) and clients (`Swarm.model`, hence
 * `swarm generate --bootstrap`) both pick 'auto' (WebAssembly SIMD where it supports the op and dtype, the CPU
 * reference elsewhere), as `swarm generate --local` does. A local reference run on these ops computes exactly what
 * the swarm computes; on the CPU reference alone it could differ in the last bits and flip near-tied argmaxes of
 * random test models.
 */
import { join } from 'node:path'
import {
  LocalModel, loadTokenizer, openModel, PRESETS, randomWeights, selectBackend, syntheticVocab, writeGgufModel,
  type LoadOptions
} from '@swarm/kernels'
import { runGeneration } from '@swarm/client'

export async function swarmDefaultOps (): Promise<LoadOptions> {
  const selected = await selectBackend('auto', { threads: 1 })
  return { ops: selected.ops, threads: selected.threads }
}

/** writes the tiny preset as a q8_0 GGUF (random weights from `seed`, the synthetic vocabulary) to DIR/tiny.gguf */
export async function writeTinyModel (dir: string, seed: number): Promise<string> {
  const path = join(dir, 'tiny.gguf')
  await writeGgufModel(path, PRESETS.tiny, randomWeights(PRESETS.tiny, seed), { dtype: 'q8_0', vocab: syntheticVocab() })
  return path
}

/** greedy tokens for `prompt` from the whole model in this process, on the swarm's default ops */
export async function localGreedy (modelPath: string, prompt: string, maxTokens: number, maxLength: number): Promise<number[]> {
  const source = await openModel(modelPath)
  try {
    const model = await LocalModel.load(source, await swarmDefaultOps())
    return (await runGeneration(model.createSession(maxLength), await loadTokenizer(source), prompt, { maxTokens })).tokens
  } finally {
    await source.close()
  }
}
