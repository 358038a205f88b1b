/** `swarm logits`: the model's logits at every position of a token sequence, for exact-match checks. */
import { ContextOverflowError } from '../errors.js'
import { integerFlag, parseFlags, tokenListFlag, modelPathOf } from './args.js'
import { loadWeights, openSource } from './model.js'
import type { CommandContext } from './context.js'
import { sessionFlagsOf, swarmFlags, swarmFlagsHelp, targetOf, withSwarmModel } from './swarm-target.js'

export const logitsHelp = `Usage: swarm logits [--model PATH] --tokens 1,2,3 [--bootstrap MULTIADDR] [--json]

Runs the model over the token ids from position 0 and prints {"logits": [[vocab floats of position 0], ...]}:
the full vocabulary at every position. Each float32 is printed as the shortest decimal of its double value, so
parsing it and rounding to float32 gives back the exact value. The output is JSON with or without --json.

Options:
  --model PATH      GGUF file or Hugging Face model directory (default: the embedded default model)
  --tokens IDS      comma-separated token ids
  --threads N       worker threads for backends that use them
${swarmFlagsHelp.replace(/ {8}/g, '')}  --json            JSON output (the default and only format)
  -h, --help        show this help
`

/** The token ids are not valid for the model. */
export class TokenOutOfRangeError extends RangeError {
  constructor (message: string) {
    super(message)
    this.name = 'TokenOutOfRangeError'
  }
}

export async function logitsCommand (args: string[], ctx: CommandContext): Promise<void> {
  const values = parseFlags('swarm logits', args, {
    model: { type: 'string' },
    tokens: { type: 'string' },
    threads: { type: 'string' },
    json: { type: 'boolean' },
    ...swarmFlags
  })
  if (values.help === true) {
    ctx.stdout(logitsHelp)
    return
  }
  const modelPath = modelPathOf(values)
  const tokens = tokenListFlag(values, 'tokens')
  const threads = integerFlag(values, 'threads', 1)
  const target = targetOf(values, { localFlag: false })
  const print = (logits: Float32Array, vocabSize: number): void => {
    const rows: string[] = []
    for (let t = 0; t < tokens.length; t++) {
      rows.push(JSON.stringify(Array.from(logits.subarray(t * vocabSize, (t + 1) * vocabSize))))
    }
    ctx.stdout(`{"logits":[${rows.join(',')}]}\n`)
  }
  const check = (vocabSize: number, contextLength: number): void => {
    const bad = tokens.find(id => id >= vocabSize)
    if (bad !== undefined) throw new TokenOutOfRangeError(`token id ${bad} is out of range [0, ${vocabSize})`)
    if (tokens.length > contextLength) {
      throw new ContextOverflowError(`${tokens.length} tokens exceed the model's context length of ${contextLength}`)
    }
  }
  if (target === 'swarm') {
    await withSwarmModel(values, modelPath, ctx, async model => {
      check(model.config.vocabSize, model.config.contextLength)
      print(await model.logits(tokens, { signal: ctx.signal, ...sessionFlagsOf(values) }), model.config.vocabSize)
    })
    return
  }

  const source = await openSource(modelPath, ctx.signal)
  try {
    check(source.config.vocabSize, source.config.contextLength)
    // the CPU reference: printed logits are meant to be compared exactly (oracles, swarm vs local)
    const { model } = await loadWeights(source, { signal: ctx.signal, threads, backend: 'cpu' })
    print(model.createSession(tokens.length).forward(tokens, { allLogits: true }), source.config.vocabSize)
  } finally {
    await source.close()
  }
}
