/**
 * The swarm across hosts: the DHT peer, three nodes and the client each run in a network namespace of their own,
 * joined by a bridge on a private subnet, so every hop is a real TCP connection between different addresses (no
 * loopback shortcut). The split model must generate exactly what one process generates.
 *
 * Needs root and iproute2 (`ip netns`); elsewhere the suite is skipped and the reason printed.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PRESETS } from '@swarm/kernels'
import { ensureBuilt, root, swarmCli } from './harness/processes.js'
import { setup, type SwarmHarness } from './harness/swarm.js'
import { createNetnsLab, namespaces, netnsUnavailableReason, removeStaleNamespaces, type NetnsLab } from './harness/netns.js'
import { localGreedy, writeTinyModel } from './harness/local.js'

const PROMPT = 'The swarm keeps every block'
const GEN_TOKENS = 32

const skipReason = netnsUnavailableReason()
if (skipReason !== undefined) console.warn(`swarm-netns: skipped: ${skipReason}`)

interface Run { code: number, stdout: string, stderr: string }

async function run (command: string[]): Promise<Run> {
  return await new Promise(resolve => {
    execFile(command[0], command.slice(1), { cwd: root, maxBuffer: 256 * 2 ** 20, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr })
    })
  })
}

describe.skipIf(skipReason !== undefined)(`three nodes in separate network namespaces${skipReason !== undefined ? ` (skipped: ${skipReason})` : ''}`, () => {
  // hosts: 0 the DHT peer, 1..3 the nodes, 4 the client
  const HOSTS = 5
  let dir: string
  let modelPath: string
  let nLayers: number
  let localTokens: number[]
  let lab: NetnsLab | undefined
  let harness: SwarmHarness | undefined

  beforeAll(async () => {
    await ensureBuilt()
    dir = await mkdtemp(join(tmpdir(), 'swarm-netns-'))
    modelPath = await writeTinyModel(dir, 7)
    nLayers = PRESETS.tiny.nLayers
    localTokens = await localGreedy(modelPath, PROMPT, GEN_TOKENS, 128)
    expect(localTokens).toHaveLength(GEN_TOKENS)

    lab = await createNetnsLab({ hosts: HOSTS })
    const host = (index: number): NonNullable<typeof lab>['hosts'][number] => lab!.hosts[index + 1] // -1: the DHT peer
    harness = await setup({
      model: modelPath,
      nodes: [{ blocks: [0, 2] }, { blocks: [2, 5] }, { blocks: [5, nLayers] }],
      wrap: i => host(i).wrap,
      hostOf: i => host(i).address
    })
  })

  afterAll(async () => {
    // processes first (they hold sockets in the namespaces), then the namespaces, even when setup failed halfway
    await harness?.cleanup()
    const made = lab === undefined ? [] : [lab.hub, ...lab.hosts.map(h => h.ns)]
    await lab?.cleanup()
    if (dir !== undefined) await rm(dir, { recursive: true, force: true })
    expect(namespaces().filter(ns => made.includes(ns))).toEqual([])
  })

  it('each process listens on its own namespace address', () => {
    const expectAddrs = (addrs: string[], address: string): void => {
      expect(addrs.length).toBeGreaterThan(0)
      for (const addr of addrs) expect(addr).toMatch(new RegExp(`^/ip4/${address.replaceAll('.', '\\.')}/tcp/\\d+/p2p/`))
    }
    expectAddrs(harness!.dht.ready.addrs, lab!.hosts[0].address)
    harness!.nodes.forEach((node, i) => { expectAddrs(node.ready.addrs, lab!.hosts[i + 1].address) })
    expect(harness!.nodes.map(n => n.ready.blocks)).toEqual([[0, 2], [2, 5], [5, nLayers]])
    expect(harness!.bootstrap.startsWith(`/ip4/${lab!.hosts[0].address}/tcp/`)).toBe(true)
  })

  it('the client cannot reach the swarm on loopback from its namespace, only over the bridge', async () => {
    // the DHT peer's port on 127.0.0.1 inside the client's namespace is closed: nothing listens there
    const port = /\/tcp\/(\d+)\//.exec(harness!.bootstrap)![1]
    const probe = await run([...lab!.hosts[4].wrap, process.execPath, '-e',
      `require('net').connect(${port}, '127.0.0.1').on('connect', () => process.exit(0)).on('error', () => process.exit(3))`])
    expect(probe.code).toBe(3)
  })

  it('namespaces left by a test run that was killed are swept, those of live runs are kept', async () => {
    const deadPid = spawnSync(process.execPath, ['-e', '0']).pid // exited: its namespaces are leftovers
    const leftover = `swt${deadPid}zh0`
    execFileSync('ip', ['netns', 'add', leftover])
    try {
      const swept = await removeStaleNamespaces()
      expect(swept).toContain(leftover)
      expect(namespaces()).not.toContain(leftover)
      expect(namespaces()).toContain(lab!.hub) // ours, and this process is alive
    } finally {
      try { execFileSync('ip', ['netns', 'delete', leftover], { stdio: 'ignore' }) } catch {}
    }
  })

  it('swarm generate --bootstrap from a fifth namespace equals the local run token for token (greedy, 32 tokens)', async () => {
    const result = await run([...lab!.hosts[4].wrap, process.execPath, swarmCli, 'generate', '--bootstrap', harness!.bootstrap,
      '--model', modelPath, '--prompt', PROMPT, '--max-tokens', String(GEN_TOKENS), '--json'])
    expect(result.code, result.stderr).toBe(0)
    const output = JSON.parse(result.stdout) as { tokens: number[], text: string }
    expect(output.tokens).toEqual(localTokens)
  })
})
