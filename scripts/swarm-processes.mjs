// swarm-node processes for the benchmark scripts (bench-swarm.mjs, sched-swarm.mjs): `start(args)` runs
// `swarm-node ARGS` (with --json among them) and resolves with its ready line and pid; `startSwarm` starts the
// benchmarks' swarm (a DHT peer and three nodes over thirds of the blocks); every process started is killed when the
// script exits.
import { spawn, spawnSync } from 'node:child_process'
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
  /**
   * a DHT peer and three nodes serving thirds of `model`'s blocks ([0, 3), [3, 5), [5, 8) for 8), `threads` each;
   * resolves with the DHT peer's ready line and each node's pid and blocks
   */
  const startSwarm = async (model, threads) => {
    const dht = await start(['dht', '--json'])
    const info = spawnSync(process.execPath, [nodeCli, 'inspect', '--model', model, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 })
    if (info.status !== 0) throw new Error(`swarm-node inspect failed: ${info.stderr}`)
    const nLayers = JSON.parse(info.stdout).config.nLayers
    const cut = k => Math.round(k * nLayers / 3)
    const nodes = []
    for (const blocks of [[0, cut(1)], [cut(1), cut(2)], [cut(2), nLayers]]) {
      const node = await start(['serve', '--model', model, '--blocks', blocks.join(':'), '--bootstrap', dht.addrs[0], '--threads', String(threads), '--json'])
      nodes.push({ pid: node.pid, blocks })
    }
    return { dht, nodes }
  }
  /** SIGTERM to every process started (they go offline and exit) */
  const stopAll = () => { for (const c of children) c.kill('SIGTERM') }
  return { start, startSwarm, stopAll }
}
