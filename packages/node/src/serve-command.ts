/** `swarm-node serve` and `swarm-node dht`: argument handling, the ready line, signals. */
import { readFile } from 'node:fs/promises'
import type { PrivateKey } from '@libp2p/interface'
import { createSwarmHost, dialBootstrap, parseSwarmKey, stopHost } from '@swarm/protocol'
import type { BackendChoice } from '@swarm/kernels'
import { loadOrCreateKey } from './key.js'
import { startServer } from './server.js'

export const serveHelp = `Usage: swarm-node serve [--model PATH] --blocks A:B [options]

Loads blocks [A, B) of the model, joins the swarm and serves inference sessions for them until SIGINT/SIGTERM,
then announces itself offline, lets open sessions finish (a few seconds) and exits.

Options:
  --model PATH            GGUF file or Hugging Face model directory (default: the embedded default model)
  --blocks A:B            blocks to serve, [A, B) (default: every block)
  --listen MULTIADDR      address to listen on, repeatable (default /ip4/127.0.0.1/tcp/0)
  --bootstrap MULTIADDR   a peer already in the swarm (e.g. a 'swarm-node dht'), repeatable
  --key FILE              peer identity (Ed25519, libp2p protobuf); created on first use, kept across restarts
  --swarm-key FILE        libp2p private network key: only peers with the same key can connect
  --allow-peers FILE      only these peer ids (one per line) may open sessions
  --max-sessions N        most concurrent sessions (default 64)
  --cache-tokens N        KV cache budget in tokens over all served blocks (default 8192)
  --session-timeout S     close a session idle for S seconds (default 300)
  --threads N             compute threads (default: all cores)
  --backend B             cpu | wasm | auto | webgpu: what runs the blocks (default auto: wasm SIMD, else the CPU reference);
                          webgpu runs them on the GPU (lavapipe without one), KV caches in GPU memory
  --json                  print one ready line {"event":"ready","peerId","addrs","blocks","modelId"} on stdout
  -h, --help              show this help
`

export const dhtHelp = `Usage: swarm-node dht [--listen MULTIADDR] [options]

Runs a DHT-only peer (no model): a bootstrap address for nodes and clients.

Options:
  --listen MULTIADDR      address to listen on, repeatable (default /ip4/127.0.0.1/tcp/0)
  --bootstrap MULTIADDR   another DHT peer to join, repeatable
  --key FILE              peer identity, created on first use
  --swarm-key FILE        libp2p private network key
  --json                  print one ready line {"event":"ready","peerId","addrs"} on stdout
  -h, --help              show this help
`

export interface ServeFlags {
  model: string
  blocks?: [number, number]
  listen: string[]
  bootstrap: string[]
  key?: string
  swarmKey?: string
  allowPeers?: string
  maxSessions?: number
  cacheTokens?: number
  sessionTimeoutS?: number
  threads?: number
  backend?: BackendChoice
  json: boolean
}

async function identity (keyFile: string | undefined): Promise<PrivateKey | undefined> {
  return keyFile === undefined ? undefined : await loadOrCreateKey(keyFile)
}

async function swarmKeyOf (file: string | undefined): Promise<Uint8Array | undefined> {
  if (file === undefined) return undefined
  return parseSwarmKey(await readFile(file))
}

async function allowList (file: string | undefined): Promise<string[] | undefined> {
  if (file === undefined) return undefined
  return (await readFile(file, 'utf8')).split(/\r?\n/).map(l => l.replace(/#.*/, '').trim()).filter(l => l.length > 0)
}

const log = (message: string): void => { process.stderr.write(`[swarm-node ${new Date().toISOString()}] ${message}\n`) }

/** resolves on the first SIGINT/SIGTERM; a second one exits at once */
function untilSignal (): Promise<string> {
  return new Promise(resolve => {
    let received = false
    const on = (signal: string): void => {
      if (received) process.exit(130)
      received = true
      resolve(signal)
    }
    process.on('SIGINT', on)
    process.on('SIGTERM', on)
  })
}

export async function serve (flags: ServeFlags, nLayersOf: (path: string) => Promise<number>): Promise<void> {
  const blocks = flags.blocks ?? [0, await nLayersOf(flags.model)]
  const server = await startServer({
    modelPath: flags.model,
    blocks,
    listen: flags.listen.length > 0 ? flags.listen : undefined,
    bootstrap: flags.bootstrap,
    privateKey: await identity(flags.key),
    swarmKey: await swarmKeyOf(flags.swarmKey),
    allowPeers: await allowList(flags.allowPeers),
    maxSessions: flags.maxSessions,
    cacheTokens: flags.cacheTokens,
    sessionIdleTimeoutMs: flags.sessionTimeoutS === undefined ? undefined : flags.sessionTimeoutS * 1000,
    threads: flags.threads,
    backend: flags.backend,
    log
  })
  const addrs = server.host.getMultiaddrs().map(a => a.toString())
  if (flags.json) {
    process.stdout.write(JSON.stringify({ event: 'ready', peerId: server.host.peerId.toString(), addrs, blocks: server.blocks, modelId: server.modelId }) + '\n')
  } else {
    process.stdout.write(`serving blocks [${server.blocks[0]}, ${server.blocks[1]}) of ${server.modelId}\n${addrs.map(a => `  ${a}`).join('\n')}\n`)
  }
  const signal = await untilSignal()
  log(`${signal}: going offline`)
  await server.stop()
  log('stopped')
}

export async function dht (flags: { listen: string[], bootstrap: string[], key?: string, swarmKey?: string, json: boolean }): Promise<void> {
  const host = await createSwarmHost({
    listen: flags.listen.length > 0 ? flags.listen : ['/ip4/127.0.0.1/tcp/0'],
    privateKey: await identity(flags.key),
    swarmKey: await swarmKeyOf(flags.swarmKey)
  })
  try {
    await dialBootstrap(host, flags.bootstrap)
  } catch (err) {
    await stopHost(host)
    throw err
  }
  const addrs = host.getMultiaddrs().map(a => a.toString())
  if (flags.json) process.stdout.write(JSON.stringify({ event: 'ready', peerId: host.peerId.toString(), addrs }) + '\n')
  else process.stdout.write(`DHT peer ${host.peerId.toString()}\n${addrs.map(a => `  ${a}`).join('\n')}\n`)
  const signal = await untilSignal()
  log(`${signal}: stopping`)
  await stopHost(host)
}
