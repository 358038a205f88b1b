/** `swarm tokenize`: the token ids of a text under the model's tokenizer. */
import { parseFlags, UsageError, modelPathOf } from './args.js'
import { openSource } from './model.js'
import { loadTokenizer } from '@swarm/kernels'
import type { CommandContext } from './context.js'

export const tokenizeHelp = `Usage: swarm tokenize [--model PATH] --text TEXT [--no-special]

Prints the JSON array of the token ids of TEXT. Reads the tokenizer only, not the weights.

Options:
  --model PATH      GGUF file or Hugging Face model directory (default: the embedded default model)
  --text TEXT       the text to encode
  --no-special      do not add the special tokens the model asks for (BOS/EOS)
  -h, --help        show this help
`

export async function tokenizeCommand (args: string[], ctx: CommandContext): Promise<void> {
  const values = parseFlags('swarm tokenize', args, {
    model: { type: 'string' },
    text: { type: 'string' },
    special: { type: 'boolean' }
  })
  if (values.help === true) {
    ctx.stdout(tokenizeHelp)
    return
  }
  const modelPath = modelPathOf(values)
  const text = values.text
  if (typeof text !== 'string') throw new UsageError('--text is required')
  const source = await openSource(modelPath, ctx.signal)
  try {
    const tokenizer = await loadTokenizer(source)
    ctx.stdout(JSON.stringify(tokenizer.encode(text, { addSpecial: values.special !== false })) + '\n')
  } finally {
    await source.close()
  }
}
