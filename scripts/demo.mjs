#!/usr/bin/env node
/**
 * The README's main job, after scripts/setup.sh: a swarm on this machine's loopback running the embedded default model.
 *
 *   1. `swarm-node dht`                      a bootstrap peer (no model)
 *   2. three `swarm-node serve` nodes        blocks split between them (default 0:2 2:3 3:4 of the 4-block model)
 *   3. `swarm status`                        what the client sees in the DHT
 *   4. `swarm generate --bootstrap ...`      text streamed to stdout as each token comes back through the three nodes
 *   5. SIGTERM to every node and the dht     each announces itself offline and must exit 0
 *
 * Environment: PROMPT, MAX_TOKENS (default 64), TEMPERATURE (0.8), SEED (7), SPLIT (e.g. "0:1 1:3 3:4"),
 * MODEL (default: the embedded default model), KEEP_LOGS=1 keeps the nodes' logs (printed path).
 * Extra arguments go to `swarm generate` (e.g. `npm run demo -- --temperature 0`).
 * Exit status: 0 only if every step worked and every process shut down cleanly.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, openSync, closeSync, rmSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const repo = join(dirname(fileURLToPath(import.meta.url)), '..')
const swarmNode = join(repo, 'packages/node/bin/swarm-node.js')
const swarm = join(repo, 'packages/client/bin/swarm.js')
const { defaultModelPath } = await import(join(repo, 'packages/kernels/dist/index.js'))

// without MODEL, no --model flag at all: `swarm-node serve` and `swarm` fall back to the embedded default model
const modelArgs = process.env.MODEL !== undefined ? ['--model', process.env.MODEL] : []
const model = process.env.MODEL ?? defaultModelPath()
const split = (process.env.SPLIT ?? '0:2 2:3 3:4').trim().split(/\s+/)
const prompt = process.env.PROMPT ?? 'And it came to pass, when the king'
const maxTokens = process.env.MAX_TOKENS ?? '64'
const READY_TIMEOUT_MS = 120_000
const logDir = mkdtempSync(join(tmpdir(), 'swarm-demo-'))
const say = message => process.stderr.write(`\x1b[2m[demo]\x1b[0m ${message}\n`)

/** @type {{ name: string, child: import('node:child_process').ChildProcess, log: string, exit: Promise<number | null> }[]} */
const running = []

/** starts a swarm-node command with its stderr in a log file; resolves with its JSON ready line */
function start (name, args) {
  const log = join(logDir, `${name}.log`)
  const fd = openSync(log, 'w')
  const child = spawn(process.execPath, [swarmNode, ...args, '--json'], { stdio: ['ignore', 'pipe', fd] })
  closeSync(fd)
  const exit = new Promise(resolve => child.once('exit', (code, signal) => resolve(code ?? (signal === null ? null : 128))))
  running.push({ name, child, log, exit })
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout })
    lines.on('line', line => {
      try {
        const event = JSON.parse(line)
        if (event.event === 'ready') resolve(event)
      } catch {}
    })
    exit.then(code => reject(new Error(`${name} exited (${code}) before it was ready; its log:\n${tail(log)}`)))
    setTimeout(() => reject(new Error(`${name} not ready after ${READY_TIMEOUT_MS / 1000} s; its log:\n${tail(log)}`)), READY_TIMEOUT_MS).unref()
  })
}

function tail (file) {
  try { return readFileSync(file, 'utf8').trim().split('\n').slice(-15).join('\n') } catch { return '(no log)' }
}

/** runs a `swarm` command with stdout (and stderr) passed through; resolves with its exit code */
function client (args) {
  const child = spawn(process.execPath, [swarm, ...args], { stdio: ['ignore', 'inherit', 'inherit'] })
  running.push({ name: 'swarm', child, log: '', exit: new Promise(resolve => child.once('exit', c => resolve(c))) })
  return running.at(-1).exit
}

/** SIGTERM to every process still running, newest first (nodes before the dht); true if each exited 0 */
async function shutDown () {
  let clean = true
  for (const p of [...running].reverse()) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM')
    const timer = setTimeout(() => p.child.kill('SIGKILL'), 15_000)
    const code = await p.exit
    clearTimeout(timer)
    if (p.name !== 'swarm') {
      say(`${p.name} exited with status ${code}`)
      if (code !== 0) { clean = false; process.stderr.write(tail(p.log) + '\n') }
    }
  }
  return clean
}

let interrupted = false
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (interrupted) process.exit(130)
    interrupted = true
    say(`${signal}: shutting the swarm down`)
  })
}

let ok = false
try {
  say(`model ${model}`)
  const dht = await start('dht', ['dht', '--listen', '/ip4/127.0.0.1/tcp/0'])
  const bootstrap = dht.addrs.find(a => a.startsWith('/ip4/127.0.0.1/')) ?? dht.addrs[0]
  say(`dht peer ${dht.peerId.slice(-8)} at ${bootstrap}`)
  const nodes = await Promise.all(split.map((blocks, i) => start(`node-${i + 1}`, [
    'serve', ...modelArgs, '--blocks', blocks, '--listen', '/ip4/127.0.0.1/tcp/0', '--bootstrap', bootstrap, '--threads', '1'
  ])))
  for (const [i, node] of nodes.entries()) say(`node-${i + 1} ${node.peerId.slice(-8)} serves blocks [${node.blocks[0]}, ${node.blocks[1]})`)
  if (!interrupted) {
    say('swarm status:')
    if (await client(['status', '--bootstrap', bootstrap, '--model', model]) !== 0) throw new Error('swarm status failed')
  }
  if (!interrupted) {
    say('swarm generate through the swarm (the prompt, then the tokens as they come back):')
    process.stdout.write(prompt)
    const code = await client([
      'generate', '--bootstrap', bootstrap, ...modelArgs, '--prompt', prompt, '--max-tokens', maxTokens,
      '--temperature', process.env.TEMPERATURE ?? '0.8', '--seed', process.env.SEED ?? '7', ...process.argv.slice(2)
    ])
    process.stdout.write('\n')
    if (code !== 0) throw new Error(`swarm generate exited with status ${code}`)
    ok = !interrupted
  }
} catch (err) {
  say(`failed: ${err.message}`)
} finally {
  say('stopping the nodes and the dht (SIGTERM: each goes offline in the DHT, then exits)')
  const clean = await shutDown()
  ok &&= clean
  if (process.env.KEEP_LOGS === '1') say(`logs kept in ${logDir}`)
  else rmSync(logDir, { recursive: true, force: true })
  say(ok ? 'done: every process exited cleanly' : 'the demo did not complete cleanly')
  process.exit(ok ? 0 : 1)
}
