/**
 * A hermetic swarm on loopback: one `swarm-node dht` bootstrap peer and N `swarm-node serve` processes, each a real
 * process with real libp2p (TCP, noise, yamux, kad-dht). `setup()` starts them and waits until each is ready;
 * `cleanup()` stops them all.
 */
import { nodeCli, startProcess, type SwarmProcess } from './processes.js'

export interface NodeSpec {
  /** blocks [start, end) */
  blocks: [number, number]
  /** extra `swarm-node serve` flags */
  args?: string[]
}

export interface SwarmOptions {
  model: string
  nodes: NodeSpec[]
  /** address the processes listen on (default 127.0.0.1) */
  host?: string
  /** prefix for every command, per process index (-1: the DHT peer), e.g. ip netns exec */
  wrap?: (index: number) => string[] | undefined
  /** host address per process index (-1: the DHT peer); default `host` */
  hostOf?: (index: number) => string
  /** extra flags for every process (e.g. --swarm-key) */
  commonArgs?: string[]
}

export interface SwarmHarness {
  dht: SwarmProcess
  nodes: SwarmProcess[]
  /** the DHT peer's multiaddr, for --bootstrap */
  bootstrap: string
  /** starts one more node */
  addNode: (spec: NodeSpec, index?: number) => Promise<SwarmProcess>
  cleanup: () => Promise<void>
}

export async function setup (options: SwarmOptions): Promise<SwarmHarness> {
  const hostOf = options.hostOf ?? (() => options.host ?? '127.0.0.1')
  const common = options.commonArgs ?? []
  const all: SwarmProcess[] = []
  const dht = await startProcess(nodeCli, ['dht', '--listen', `/ip4/${hostOf(-1)}/tcp/0`, '--json', ...common], { wrap: options.wrap?.(-1) })
  all.push(dht)
  const bootstrap = dht.ready.addrs[0]
  const addNode = async (spec: NodeSpec, index = all.length - 1): Promise<SwarmProcess> => {
    const node = await startProcess(nodeCli, [
      'serve', '--model', options.model, '--blocks', `${spec.blocks[0]}:${spec.blocks[1]}`,
      '--listen', `/ip4/${hostOf(index)}/tcp/0`, '--bootstrap', bootstrap, '--threads', '1', '--json', ...common, ...(spec.args ?? [])
    ], { wrap: options.wrap?.(index) })
    all.push(node)
    return node
  }
  try {
    // nodes start one after another: each joins a DHT that already holds its predecessors
    const nodes: SwarmProcess[] = []
    for (const [i, spec] of options.nodes.entries()) nodes.push(await addNode(spec, i))
    return {
      dht, nodes, bootstrap, addNode,
      cleanup: async () => { await stopAll(all) }
    }
  } catch (err) {
    await stopAll(all)
    throw err
  }
}

/** SIGTERM, then SIGKILL whatever is still alive (or stopped) after a grace period */
async function stopAll (processes: SwarmProcess[]): Promise<void> {
  await Promise.all(processes.map(async p => {
    if (p.child.exitCode !== null || p.child.signalCode !== null) return
    p.child.kill('SIGCONT')
    p.kill('SIGTERM')
    const timer = setTimeout(() => { p.kill('SIGKILL') }, 8_000)
    await p.exited
    clearTimeout(timer)
  }))
}
