/**
 * libp2p pieces for tests that act as raw peers (fuzzers, forgers). test/ declares no libp2p dependency of its own,
 * so these come from the workspace packages' installs (the same store versions @swarm/protocol runs on).
 */
export { lpStream } from '../../packages/node/node_modules/@libp2p/utils/dist/src/index.js'
export { generateKeyPair, privateKeyFromProtobuf } from '../../packages/node/node_modules/@libp2p/crypto/dist/src/keys/index.js'
export { peerIdFromPrivateKey, peerIdFromString } from '../../packages/node/node_modules/@libp2p/peer-id/dist/src/index.js'
export { multiaddr } from '../../packages/protocol/node_modules/@multiformats/multiaddr/dist/src/index.js'

/** resident set size (VmRSS) and its peak (VmHWM) of a process, MB */
export async function memoryOf (pid: number): Promise<{ rssMb: number, peakMb: number }> {
  const { readFile } = await import('node:fs/promises')
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (name: string): number => Number(/^(\w+):\s+(\d+) kB/m.exec(status.split('\n').find(l => l.startsWith(`${name}:`)) ?? '')?.[2] ?? NaN)
  return { rssMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 }
}
