/** `swarm make-model`: a deterministic random-weights model (GGUF file or HF directory) for tests and demos. */
import { mkdir } from 'node:fs/promises'
import { dirname } from 'node:path'
import {
  PRESETS, randomWeightSource, syntheticVocab, tokenizerJsonFromVocab, writeGgufModel, writeHfModel,
  type ModelConfig
} from '@swarm/kernels'
import { extendVocab } from '../vocab-extend.js'
import { choiceFlag, integerFlag, parseFlags, requireString, UsageError } from './args.js'
import type { CommandContext } from './context.js'

const PRESET_NAMES = ['tiny', 'tiny-qwen2', 'tiny-tied', 'tinyllama-8l'] as const
const DTYPES = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_K', 'q6_K'] as const
/** Hugging Face checkpoints store floats only */
const HF_DTYPES = ['f32', 'f16', 'bf16'] as const
const FORMATS = ['gguf', 'hf'] as const

export const makeModelHelp = `Usage: swarm make-model --out PATH [options]

Writes a model with deterministic random weights and a small synthetic vocabulary (extended with '▁tok<id>'
tokens up to the preset's vocabulary size), for tests and demos. Its output is noise, not language.

Options:
  --out PATH        output: a .gguf file, or a directory for --format hf
  --preset NAME     ${PRESET_NAMES.join(' | ')} (default tiny)
  --dtype DTYPE     ${DTYPES.join(' | ')} (default f32; hf: ${HF_DTYPES.join(', ')} only;
                    q4_K and q6_K need the preset's dim and ffn size to be multiples of 256)
  --format FORMAT   gguf | hf (default gguf)
  --seed N          weights seed, an integer >= 0 (default 1)
  -h, --help        show this help
`

export async function makeModelCommand (args: string[], ctx: CommandContext): Promise<void> {
  const values = parseFlags('swarm make-model', args, {
    out: { type: 'string' },
    preset: { type: 'string' },
    dtype: { type: 'string' },
    format: { type: 'string' },
    seed: { type: 'string' }
  })
  if (values.help === true) {
    ctx.stdout(makeModelHelp)
    return
  }
  const out = requireString(values, 'out')
  const preset = choiceFlag(values, 'preset', PRESET_NAMES) ?? 'tiny'
  const dtype = choiceFlag(values, 'dtype', DTYPES) ?? 'f32'
  const format = choiceFlag(values, 'format', FORMATS) ?? 'gguf'
  const seed = integerFlag(values, 'seed', 0) ?? 1
  if (format === 'hf' && !(HF_DTYPES as readonly string[]).includes(dtype)) {
    throw new UsageError(`--dtype ${dtype} is GGUF only; Hugging Face models take ${HF_DTYPES.join(', ')}`)
  }

  const base = PRESETS[preset]
  const vocab = extendVocab(syntheticVocab(), base.vocabSize)
  const config: ModelConfig = { ...base, vocabSize: vocab.tokens.length }
  // tensors are generated one at a time as the writer streams them (tinyllama-8l is GBs in f32)
  const weights = randomWeightSource(config, seed)
  if (format === 'gguf') {
    await mkdir(dirname(out), { recursive: true })
    await writeGgufModel(out, config, weights, { dtype, vocab, signal: ctx.signal })
  } else {
    await mkdir(out, { recursive: true })
    const { tokenizerJson, tokenizerConfig } = tokenizerJsonFromVocab(vocab)
    await writeHfModel(out, config, weights, { dtype: dtype as typeof HF_DTYPES[number], tokenizerJson, tokenizerConfig, signal: ctx.signal })
  }
  ctx.stderr(`wrote ${format} model ${out} (preset ${preset}, ${dtype}, seed ${seed}, vocabulary ${config.vocabSize})\n`)
}
