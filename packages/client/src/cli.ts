#!/usr/bin/env node
/**
 * The `swarm` command. Every failure ends as one line `swarm: <message>` on stderr with exit code 1 (2 for a
 * mistake in the command line); the stack trace only with SWARM_DEBUG=1.
 */
import { UsageError } from './cli/args.js'
import { benchCommand, benchHelp } from './cli/bench-command.js'
import type { CommandContext } from './cli/context.js'
import { generateCommand, generateHelp } from './cli/generate-command.js'
import { logitsCommand, logitsHelp } from './cli/logits-command.js'
import { makeModelCommand, makeModelHelp } from './cli/make-model-command.js'
import { tokenizeCommand, tokenizeHelp } from './cli/tokenize-command.js'
import { statusCommand, statusHelp } from './cli/status-command.js'

const commands: Record<string, { run: (args: string[], ctx: CommandContext) => Promise<void>, help: string, summary: string }> = {
  generate: { run: generateCommand, help: generateHelp, summary: 'generate text (--local: in this process; --bootstrap: through the swarm)' },
  logits: { run: logitsCommand, help: logitsHelp, summary: 'print the logits of every position of a token sequence' },
  tokenize: { run: tokenizeCommand, help: tokenizeHelp, summary: 'print the token ids of a text' },
  bench: { run: benchCommand, help: benchHelp, summary: 'measure load time, prefill and decode speed, peak memory' },
  status: { run: statusCommand, help: statusHelp, summary: 'show the swarm: peers, their blocks and load, blocks with no server' },
  'make-model': { run: makeModelCommand, help: makeModelHelp, summary: 'write a random-weights test model' }
}

const help = `Usage: swarm <command> [options]

Client of a Petals-style inference swarm: runs a model's blocks on the swarm's nodes (--bootstrap) or locally.

Commands:
${Object.entries(commands).map(([name, c]) => `  ${name.padEnd(12)}${c.summary}`).join('\n')}

Run 'swarm <command> --help' for the options of a command.
Environment: SWARM_DEBUG=1 prints stack traces of errors.
`

function oneLine (text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}

async function main (argv: string[]): Promise<number> {
  const controller = new AbortController()
  const onSigint = (): void => {
    if (controller.signal.aborted) process.exit(130)
    controller.abort()
  }
  process.on('SIGINT', onSigint)
  const ctx: CommandContext = {
    stdout: text => { process.stdout.write(text) },
    stderr: text => { process.stderr.write(text) },
    signal: controller.signal
  }
  const [name, ...args] = argv
  try {
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      if (name === 'help' && args[0] !== undefined && commands[args[0]] !== undefined) ctx.stdout(commands[args[0]].help)
      else ctx.stdout(help)
      return 0
    }
    const command = commands[name]
    if (command === undefined) {
      throw new UsageError(name.startsWith('-') ? `unknown option ${name} (see swarm --help)` : `unknown command '${name}' (see swarm --help)`)
    }
    await command.run(args, ctx)
    return 0
  } catch (error) {
    if (controller.signal.aborted) {
      process.stderr.write('swarm: interrupted\n')
      return 130
    }
    const message = error instanceof Error ? error.message : String(error)
    process.stderr.write(`swarm: ${oneLine(message) || 'unknown error'}\n`)
    if (process.env.SWARM_DEBUG === '1' && error instanceof Error) process.stderr.write(`${error.stack ?? ''}\n`)
    return error instanceof UsageError ? 2 : 1
  } finally {
    process.off('SIGINT', onSigint)
  }
}

// a closed pipe (`swarm generate ... | head`) ends the command quietly
process.stdout.on('error', error => {
  if ((error as NodeJS.ErrnoException).code === 'EPIPE') process.exit(0)
  throw error
})

// libp2p and this client bound their waits with AbortSignal.timeout, whose timer does not keep Node running: if a
// command waited on one at a moment with no open socket, Node would end it with exit code 13 (unsettled top-level
// await) instead of letting the timeout fire and report. This timer keeps the process up until main returns.
const keepAlive = setInterval(() => {}, 2 ** 30)
try {
  process.exitCode = await main(process.argv.slice(2))
} finally {
  clearInterval(keepAlive)
}
