#!/usr/bin/env node
/**
 * The `swarm-node` command. Every failure ends as one line `swarm-node: <message>` on stderr with exit code 1
 * (2 for a mistake in the command line); the stack trace only with SWARM_DEBUG=1.
 */
import { parseArgs } from 'node:util'
import { BACKEND_CHOICES, defaultModelPath, openModel, type BackendChoice } from '@swarm/kernels'
import { blockTensors, parseBlockRange, InvalidBlockRangeError } from './inspect.js'
import { dht, dhtHelp, serve, serveHelp } from './serve-command.js'

class UsageError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

const help = `Usage: swarm-node <command> [options]

A node of the swarm: loads a contiguous range of transformer blocks of one model and serves them.

Commands:
  serve       serve a range of transformer blocks to the swarm
  dht         run a DHT-only bootstrap peer
  inspect     print the model config and the tensors (and bytes) a node serving a block range would load

Run 'swarm-node <command> --help' for the options of a command.
Environment: SWARM_DEBUG=1 prints stack traces of errors.
`

const inspectHelp = `Usage: swarm-node inspect [--model PATH] [--blocks A:B] [--json]

Reads the model's headers only (no tensor data) and prints its config and the tensors a node serving blocks
[A, B) would load, with their total bytes.

Options:
  --model PATH      GGUF file or Hugging Face model directory (default: the embedded default model)
  --blocks A:B      block range [A, B) (default: every block)
  --json            print {model, format, config, blocks: {start, end}, tensors: [{name, dtype, shape, byteLength}], totalBytes}
  -h, --help        show this help
`

function parse (command: string, args: string[], options: NonNullable<Parameters<typeof parseArgs>[0]>['options']): Record<string, unknown> {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values
  } catch (error) {
    const message = (error as Error).message
    const code = (error as { code?: string }).code
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      throw new UsageError(`unknown option ${/'([^']+)'/.exec(message)?.[1] ?? message} for '${command}' (see ${command} --help)`)
    }
    if (code?.startsWith('ERR_PARSE_ARGS') === true) throw new UsageError(`${message} (see ${command} --help)`)
    throw error
  }
}

async function inspect (args: string[]): Promise<void> {
  const values = parse('swarm-node inspect', args, { model: { type: 'string' }, blocks: { type: 'string' }, json: { type: 'boolean' } })
  if (values.help === true) {
    process.stdout.write(inspectHelp)
    return
  }
  const path = typeof values.model === 'string' && values.model !== '' ? values.model : defaultModelPath()
  let range = typeof values.blocks === 'string' ? parseBlockRangeFlag(values.blocks) : undefined
  const source = await openModel(path)
  try {
    range ??= { start: 0, end: source.config.nLayers }
    const { tensors, totalBytes } = blockTensors(source, range)
    if (values.json === true) {
      process.stdout.write(JSON.stringify({ model: path, format: source.format, config: source.config, blocks: range, tensors, totalBytes }) + '\n')
      return
    }
    const lines = [`model   ${path} (${source.format})`, 'config']
    for (const [key, value] of Object.entries(source.config)) lines.push(`  ${key.padEnd(16)}${JSON.stringify(value)}`)
    lines.push(`blocks  [${range.start}, ${range.end}): ${tensors.length} tensors, ${totalBytes} bytes (${(totalBytes / 2 ** 20).toFixed(2)} MiB)`)
    const width = Math.max(...tensors.map(t => t.name.length), 4)
    for (const t of tensors) lines.push(`  ${t.name.padEnd(width)}  ${t.dtype.padEnd(5)} [${t.shape.join(', ')}]  ${t.byteLength}`)
    process.stdout.write(lines.join('\n') + '\n')
  } finally {
    await source.close()
  }
}

function backendFlag (value: unknown): BackendChoice | undefined {
  if (value === undefined) return undefined
  if (!BACKEND_CHOICES.includes(value as BackendChoice)) throw new UsageError(`--backend must be one of ${BACKEND_CHOICES.join(', ')}`)
  return value as BackendChoice
}

function positiveInt (values: Record<string, unknown>, name: string, min = 1): number | undefined {
  const text = values[name]
  if (text === undefined) return undefined
  const n = Number(text)
  if (typeof text !== 'string' || !/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got '${String(text)}'`)
  return n
}

const networkOptions = {
  listen: { type: 'string', multiple: true },
  bootstrap: { type: 'string', multiple: true },
  key: { type: 'string' },
  'swarm-key': { type: 'string' },
  json: { type: 'boolean' }
} as const

async function serveCommand (args: string[]): Promise<void> {
  const values = parse('swarm-node serve', args, {
    ...networkOptions,
    model: { type: 'string' },
    blocks: { type: 'string' },
    'allow-peers': { type: 'string' },
    'max-sessions': { type: 'string' },
    'cache-tokens': { type: 'string' },
    'session-timeout': { type: 'string' },
    threads: { type: 'string' },
    backend: { type: 'string' }
  })
  if (values.help === true) {
    process.stdout.write(serveHelp)
    return
  }
  const model = typeof values.model === 'string' && values.model !== '' ? values.model : defaultModelPath()
  const range = typeof values.blocks === 'string' ? parseBlockRangeFlag(values.blocks) : undefined
  await serve({
    model,
    blocks: range === undefined ? undefined : [range.start, range.end],
    listen: (values.listen as string[] | undefined) ?? [],
    bootstrap: (values.bootstrap as string[] | undefined) ?? [],
    key: values.key as string | undefined,
    swarmKey: values['swarm-key'] as string | undefined,
    allowPeers: values['allow-peers'] as string | undefined,
    maxSessions: positiveInt(values, 'max-sessions'),
    cacheTokens: positiveInt(values, 'cache-tokens'),
    sessionTimeoutS: positiveInt(values, 'session-timeout'),
    threads: positiveInt(values, 'threads'),
    backend: backendFlag(values.backend),
    json: values.json === true
  }, async path => {
    const source = await openModel(path)
    try { return source.config.nLayers } finally { await source.close() }
  })
}

async function dhtCommand (args: string[]): Promise<void> {
  const values = parse('swarm-node dht', args, networkOptions)
  if (values.help === true) {
    process.stdout.write(dhtHelp)
    return
  }
  await dht({
    listen: (values.listen as string[] | undefined) ?? [],
    bootstrap: (values.bootstrap as string[] | undefined) ?? [],
    key: values.key as string | undefined,
    swarmKey: values['swarm-key'] as string | undefined,
    json: values.json === true
  })
}

function parseBlockRangeFlag (text: string): { start: number, end: number } {
  try {
    return parseBlockRange(text)
  } catch (error) {
    if (error instanceof InvalidBlockRangeError) throw new UsageError(`--blocks: ${error.message}`)
    throw error
  }
}

async function main (argv: string[]): Promise<number> {
  const [name, ...args] = argv
  try {
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      const helps: Record<string, string> = { inspect: inspectHelp, serve: serveHelp, dht: dhtHelp }
      process.stdout.write(name === 'help' && args[0] !== undefined && helps[args[0]] !== undefined ? helps[args[0]] : help)
      return 0
    }
    if (name === 'inspect') {
      await inspect(args)
      return 0
    }
    if (name === 'serve') {
      await serveCommand(args)
      return 0
    }
    if (name === 'dht') {
      await dhtCommand(args)
      return 0
    }
    throw new UsageError(name.startsWith('-') ? `unknown option ${name} (see swarm-node --help)` : `unknown command '${name}' (see swarm-node --help)`)
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error)
    process.stderr.write(`swarm-node: ${message.replace(/\s*\n\s*/g, ' ').trim() || 'unknown error'}\n`)
    if (process.env.SWARM_DEBUG === '1' && error instanceof Error) process.stderr.write(`${error.stack ?? ''}\n`)
    return error instanceof UsageError ? 2 : 1
  }
}

process.stdout.on('error', error => {
  if ((error as NodeJS.ErrnoException).code === 'EPIPE') process.exit(0)
  throw error
})

process.exitCode = await main(process.argv.slice(2))
