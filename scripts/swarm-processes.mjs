// swarm-node processes for the benchmark scripts (bench-swarm.mjs, sched-swarm.mjs): `start(args)` runs
// `swarm-node ARGS` (with --json among them) and resolves with its ready line and pid; every process started is
// killed when the script exits.
import { spawn } from 'node:child_process'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const nodeCli = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'packages/node/dist/cli.js')

/** stderr: 'inherit' shows the nodes' logs, 'ignore' drops them */
export function swarmProcesses ({ stderr = 'inherit' } = {}) {
  const children = []
  process.on('exit', () => { for (const c of children) c.kill('SIGKILL') })
  const start = args => {
    const child = spawn(process.execPath, [nodeCli, ...args], { stdio: ['ignore', 'pipe', stderr] })
    children.push(child)
    return new Promise((resolveReady, reject) => {
      let out = ''
      child.stdout.setEncoding('utf8').on('data', chunk => {
        out += chunk
        const line = out.split('\n').find(l => l.startsWith('{"event":"ready"'))
        if (line !== undefined) resolveReady({ ...JSON.parse(line), pid: child.pid })
      })
      child.once('exit', code => reject(new Error(`${args[0]} exited with ${code}`)))
    })
  }
  /** SIGTERM to every process started (they go offline and exit) */
  const stopAll = () => { for (const c of children) c.kill('SIGTERM') }
  return { start, stopAll, children }
}
