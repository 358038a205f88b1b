/**
 * A swarm with a WebGPU node: `swarm-node serve --backend webgpu` (blocks and KV caches on the GPU, lavapipe here)
 * for blocks [0, 3) and a CPU-reference node for [3, L), client head on the CPU reference too (`--backend cpu`);
 * `swarm generate --bootstrap` must equal the local CPU-reference run token for
 * token (greedy), with the node's KV cache kept on the device across the decode steps.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LocalModel, loadTokenizer, openModel, PRESETS, randomWeights, syntheticVocab, useLocalLavapipe, writeGgufModel } from '@swarm/kernels'
import { runGeneration } from '@swarm/client'
import { ensureBuilt, root, swarmCli } from './harness/processes.js'
import { setup, type SwarmHarness } from './harness/swarm.js'

const SKIP = process.env.SWARM_SKIP_WEBGPU === '1'
const PROMPT = 'The swarm keeps every block'
const GEN_TOKENS = 24

let dir: string
let modelPath: string
let localTokens: number[]

beforeAll(async () => {
  if (SKIP) return
  await ensureBuilt()
  useLocalLavapipe() // the nodes inherit this process's environment
  dir = await mkdtemp(join(tmpdir(), 'webgpu-swarm-'))
  modelPath = join(dir, 'tiny.gguf')
  const config = PRESETS.tiny
  await writeGgufModel(modelPath, config, randomWeights(config, 7), { dtype: 'f32', vocab: syntheticVocab() })
  const source = await openModel(modelPath)
  const model = await LocalModel.load(source)
  localTokens = (await runGeneration(model.createSession(128), await loadTokenizer(source), PROMPT, { maxTokens: GEN_TOKENS })).tokens
  await source.close()
})

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

describe.skipIf(SKIP)('a WebGPU node [0, 3) and a CPU node [3, L)', () => {
  let harness: SwarmHarness
  beforeAll(async () => {
    harness = await setup({ model: modelPath, nodes: [{ blocks: [0, 3], args: ['--backend', 'webgpu'] }, { blocks: [3, PRESETS.tiny.nLayers], args: ['--backend', 'cpu'] }] })
  })
  afterAll(async () => { await harness?.cleanup() })

  it('swarm generate --bootstrap equals the local run token for token', async () => {
    const run = await new Promise<{ code: number, stdout: string, stderr: string }>(resolve => {
      execFile(process.execPath, [swarmCli, 'generate', '--bootstrap', harness.bootstrap, '--model', modelPath, '--prompt', PROMPT,
        '--max-tokens', String(GEN_TOKENS), '--backend', 'cpu', '--json'], { cwd: root }, (error, stdout, stderr) => {
        resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr })
      })
    })
    expect(run.code, run.stderr).toBe(0)
    expect((JSON.parse(run.stdout) as { tokens: number[] }).tokens).toEqual(localTokens)
  })
})
