/**
 * Security with real processes and real libp2p peers in this process:
 * (a) a private swarm (`--swarm-key`): a client with the key generates exactly; a client or peer without it (or with
 *     another key) cannot connect, and a raw TCP connection reads nothing but the pnet nonce and ciphertext;
 * (b) DHT records: a forged record (signed by another key for the victim's peer id), a replayed older record, an
 *     expired record and records under a wrong model id are refused by every node's validator (a put is accepted by
 *     nobody, a get still returns the genuine record) and ignored by the client's discovery;
 * (c) `--allow-peers`: only the listed peer may open sessions; any other gets a clear error.
 */
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PRESETS } from '@swarm/kernels'
import { runGeneration, Swarm } from '@swarm/client'
import {
  createSwarmHost, dialBootstrap, encodeInfoResponse, INFO_PROTOCOL, InvalidRecordError, InvalidSignatureError, packValue, parseSwarmKey, recordKey,
  RecordExpiredError, signRecord, verifyRecordValue, type SwarmHost, type SwarmRecord
} from '@swarm/protocol'
// discovery is internal to the SDK; the test checks the very functions the SDK's routing view uses
import { discoverRecords, fetchRecord } from '../packages/client/src/discovery.js'
import { ensureBuilt } from './harness/processes.js'
import { setup, type SwarmHarness } from './harness/swarm.js'
import { generateKeyPair, lpStream, multiaddr, peerIdFromPrivateKey, privateKeyFromProtobuf } from './harness/libp2p.js'
import { localGreedy, writeTinyModel } from './harness/local.js'

const PROMPT = 'Only friends may enter'
const GEN_TOKENS = 16
const config = PRESETS.tiny
const L = config.nLayers

let dir: string
let modelPath: string
let localTokens: number[]

beforeAll(async () => {
  await ensureBuilt()
  dir = await mkdtemp(join(tmpdir(), 'swarm-security-'))
  modelPath = await writeTinyModel(dir, 9)
  localTokens = await localGreedy(modelPath, PROMPT, GEN_TOKENS, 64)
})

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

async function generateWith (swarm: Swarm, retry = {}): Promise<number[]> {
  const model = await swarm.model(modelPath)
  const session = await model.inferenceSession({ maxLength: 64, retry })
  try {
    return (await runGeneration(model.runner(session), model.tokenizer, PROMPT, { maxTokens: GEN_TOKENS })).tokens
  } finally {
    await session.close()
  }
}

async function writeSwarmKey (name: string): Promise<string> {
  const file = join(dir, name)
  await writeFile(file, `/key/swarm/psk/1.0.0/\n/base16/\n${randomBytes(32).toString('hex')}\n`)
  return file
}

/** the message of an error and of every error in its cause chain */
function messages (err: unknown): string {
  const parts: string[] = []
  for (let e = err; e instanceof Error; e = e.cause) parts.push(`${e.name}: ${e.message}`)
  return parts.join(' <- ')
}

describe('a private swarm (--swarm-key)', () => {
  let harness: SwarmHarness
  let keyFile: string
  let otherKeyFile: string
  beforeAll(async () => {
    keyFile = await writeSwarmKey('swarm.key')
    otherKeyFile = await writeSwarmKey('other-swarm.key')
    harness = await setup({ model: modelPath, nodes: [{ blocks: [0, 3] }, { blocks: [3, L] }], commonArgs: ['--swarm-key', keyFile] })
  })
  afterAll(async () => { await harness?.cleanup() })

  it('a client with the key generates exactly the local output', async () => {
    const swarm = await Swarm.connect({ bootstrap: [harness.bootstrap], swarmKey: parseSwarmKey(await readFile(keyFile)) })
    try {
      expect(await generateWith(swarm)).toEqual(localTokens)
    } finally {
      await swarm.close()
    }
  })

  it('a client without the key, or with another key, cannot connect', async () => {
    const without = await Swarm.connect({ bootstrap: [harness.bootstrap], signal: AbortSignal.timeout(10_000) }).then(s => s, err => err as Error)
    const other = await Swarm.connect({ bootstrap: [harness.bootstrap], swarmKey: parseSwarmKey(await readFile(otherKeyFile)), signal: AbortSignal.timeout(10_000) }).then(s => s, err => err as Error)
    console.log(`without the key: ${messages(without).slice(0, 300)}\nwith another key: ${messages(other).slice(0, 300)}`)
    for (const result of [without, other]) {
      if (result instanceof Swarm) await result.close()
      expect(result).toBeInstanceOf(Error)
      expect((result as Error).name).toBe('BootstrapError')
    }
  })

  it('a libp2p peer without the key can dial no process of the swarm; a raw TCP reader sees no protocol bytes', async () => {
    const outsiders: SwarmHost[] = [
      await createSwarmHost({}),
      await createSwarmHost({ swarmKey: parseSwarmKey(await readFile(otherKeyFile)) })
    ]
    try {
      const dials = outsiders.flatMap(host => [harness.dht, ...harness.nodes].map(async target =>
        await host.dial(multiaddr(target.ready.addrs[0]), { signal: AbortSignal.timeout(5_000) }).then(() => 'connected', (err: Error) => err.name)))
      const results = await Promise.all(dials)
      console.log(`outsiders dialing the dht and the nodes: ${results.join(', ')}`)
      expect(results).not.toContain('connected')
      for (const host of outsiders) expect(host.getConnections()).toHaveLength(0)
    } finally {
      await Promise.all(outsiders.map(async h => { await h.stop() }))
    }
    // speak multistream-select in the clear, as a libp2p dialer without pnet would; collect what the node sends
    const [, ip, port] = /^\/ip4\/([^/]+)\/tcp\/(\d+)/.exec(harness.nodes[0].ready.addrs[0])!
    const received = await new Promise<Buffer>(resolve => {
      const chunks: Buffer[] = []
      const socket = connect(Number(port), ip, () => { socket.write(Buffer.from('\x13/multistream/1.0.0\n')) })
      socket.on('data', chunk => { chunks.push(chunk) })
      const done = (): void => { socket.destroy(); resolve(Buffer.concat(chunks)) }
      socket.on('close', done)
      socket.on('error', done)
      setTimeout(done, 1500)
    })
    console.log(`raw TCP reader got ${received.length} bytes from the node: ${received.subarray(0, 32).toString('hex')}`)
    // the pnet handshake: the node's 24-byte nonce, then only XSalsa20 ciphertext
    expect(received.length).toBeLessThanOrEqual(64)
    expect(received.toString('latin1')).not.toMatch(/multistream|noise|swarm|yamux/)
  })
})

describe('DHT records: forged, replayed, expired, wrong model', () => {
  let harness: SwarmHarness
  let victimKeyFile: string
  let attacker: SwarmHost
  let observer: SwarmHost
  let modelId: string
  let victim: string

  beforeAll(async () => {
    victimKeyFile = join(dir, 'victim.key')
    harness = await setup({ model: modelPath, nodes: [{ blocks: [0, L], args: ['--key', victimKeyFile] }, { blocks: [0, L] }] })
    modelId = harness.nodes[0].ready.modelId!
    victim = harness.nodes[0].ready.peerId
    attacker = await createSwarmHost({ dhtClient: true })
    await dialBootstrap(attacker, [harness.bootstrap])
    observer = await createSwarmHost({ dhtClient: true })
    await dialBootstrap(observer, [harness.bootstrap])
    // both know every DHT server, so a put or get reaches all three
    for (const host of [attacker, observer]) await dialBootstrap(host, harness.nodes.map(n => n.ready.addrs[0]))
    await new Promise(resolve => setTimeout(resolve, 500)) // identify -> routing tables
  })
  afterAll(async () => {
    await attacker?.stop()
    await observer?.stop()
    await harness?.cleanup()
  })

  /** puts a value from the attacker; returns the peers that acknowledged storing it */
  async function put (key: Uint8Array, value: Uint8Array): Promise<string[]> {
    const accepted: string[] = []
    for await (const event of attacker.services.dht.put(key, value, { signal: AbortSignal.timeout(15_000) })) {
      // a storing peer echoes the record it stored (kad-dht's own check of a put)
      if (event.name === 'PEER_RESPONSE' && event.record != null && Buffer.from(event.record.value).equals(Buffer.from(value))) accepted.push(event.from.toString())
    }
    return accepted
  }

  /** what a fresh get through the DHT returns for a key (the observer validates and selects like every host) */
  async function get (key: Uint8Array): Promise<Uint8Array | undefined> {
    try {
      return await observer.contentRouting.get(key, { signal: AbortSignal.timeout(10_000) })
    } catch {
      return undefined
    }
  }

  /** the record bytes signed by any key (signRecord refuses a key that is not the record's peer's): the same layout and domain prefix */
  async function signWith (key: Awaited<ReturnType<typeof generateKeyPair>>, record: SwarmRecord): Promise<Uint8Array> {
    const recordBytes = packValue(record)
    const domain = new TextEncoder().encode('/swarm/record/1.0.0\n')
    const sig = await key.sign(Uint8Array.from([...domain, ...recordBytes]))
    return packValue({ record: recordBytes, sig })
  }

  it('each bad record is refused by every node and ignored by the client; a legitimately newer one is accepted', async () => {
    const key = recordKey(modelId, victim)
    const genuineValue = await get(key)
    expect(genuineValue).toBeDefined()
    const genuine = await verifyRecordValue(key, genuineValue!)
    const victimKey = privateKeyFromProtobuf(await readFile(victimKeyFile))
    expect(peerIdFromPrivateKey(victimKey).toString()).toBe(victim)
    const forgerKey = await generateKeyPair('Ed25519')
    const now = Date.now()
    const fresh = (change: Partial<SwarmRecord>): SwarmRecord => ({ ...genuine, expiresAt: now + 20_000, ...change })
    const forge = async (record: SwarmRecord): Promise<Uint8Array> => await signWith(forgerKey, record)

    // control: the victim's own key and a seq above anything the victim announces during this test (its seq tracks
    // the clock): every DHT server stores it, so a refusal below means something
    const controlSeq = Math.max(genuine.seq, now) + 30_000
    const control = await signRecord(fresh({ seq: controlSeq }), victimKey)
    const controlAccepted = await put(key, control)
    expect(controlAccepted.length).toBe(3) // the DHT peer and both nodes

    const otherModelKey = recordKey('some-other-model', victim)
    const attacks: Array<[string, Uint8Array, Uint8Array, new (...args: any[]) => Error]> = [
      ['forged (signed by another key, offline state, attacker address)', key,
        await forge(fresh({ seq: controlSeq + 1000, state: 'offline', addrs: ['/ip4/6.6.6.6/tcp/666'] })), InvalidSignatureError],
      ['replayed (the victim\'s own older record)', key, await signRecord(fresh({ seq: genuine.seq - 1 }), victimKey), Error],
      ['expired (signed by the victim)', key, await signRecord(fresh({ seq: controlSeq + 2000, expiresAt: now - 1000 }), victimKey), RecordExpiredError],
      ['claims to live for days', key, await signRecord(fresh({ seq: controlSeq + 2500, expiresAt: now + 3 * 86_400_000 }), victimKey), RecordExpiredError],
      ['another model\'s record under this model\'s key', key, await signRecord(fresh({ seq: controlSeq + 3000, modelId: 'some-other-model' }), victimKey), InvalidRecordError],
      ['this model\'s record under another model\'s key', otherModelKey, await signRecord(fresh({ seq: controlSeq + 4000 }), victimKey), InvalidRecordError]
    ]
    const report: string[] = []
    for (const [name, k, value, ErrorClass] of attacks) {
      const accepted = await put(k, value)
      const got = await get(k)
      report.push(`${name}: accepted by ${accepted.length} nodes; get returns ${got === undefined ? 'nothing' : `seq ${(await verifyRecordValue(k, got).catch(() => ({ seq: 'INVALID' }))).seq}`}`)
      if (name.startsWith('replayed')) {
        // a replay is refused by every node that has seen the newer record (a node that has seen none may store it;
        // readers still pick the highest seq and kad-dht corrects that copy on the next get)
        expect(accepted.filter(p => controlAccepted.includes(p)), name).toEqual([])
      } else {
        expect(accepted, name).toEqual([])
      }
      if (k === key) {
        // the genuine record: the control, or a newer one the victim announced since (it re-announces every 10 s)
        expect(got, name).toBeDefined()
        expect(Buffer.from(got!).equals(Buffer.from(value)), name).toBe(false)
        const record = await verifyRecordValue(key, got!)
        expect(record.seq, name).toBe(controlSeq)
        expect([record.state, record.addrs], name).toEqual(['online', genuine.addrs])
      } else {
        expect(got, name).toBeUndefined()
      }
      // the client's own check refuses the stateless cases as well
      if (ErrorClass !== Error) await expect(verifyRecordValue(k, value), name).rejects.toBeInstanceOf(ErrorClass)
    }
    console.log(`control (victim's key, a higher seq) accepted by ${controlAccepted.length} DHT servers\n${report.join('\n')}`)

    // the client's discovery sees both nodes with their genuine records only; it asks each node for its record (the
    // victim's own current one, below the control's seq), so nothing an attacker stores in the DHT reaches it
    const records = await discoverRecords(observer, modelId, { timeoutMs: 5_000 })
    expect(records.map(r => r.peerId).sort()).toEqual(harness.nodes.map(n => n.ready.peerId).sort())
    const seen = records.find(r => r.peerId === victim)!
    expect(seen.addrs).toEqual(genuine.addrs)
    expect(seen.state).toBe('online')
    expect(seen.seq).toBeGreaterThanOrEqual(genuine.seq)
    expect(seen.seq).toBeLessThan(controlSeq)
    // a node asked for a model it does not serve says so (wrong-model), and the client has no record of it
    expect((await fetchRecord(observer, 'some-other-model', victim))).toBeUndefined()
  })

  it('a peer that answers a record-request with a record that is not its own is ignored', async () => {
    const attackerId = attacker.peerId.toString()
    const victimValue = await get(recordKey(modelId, victim))
    expect(victimValue).toBeDefined()
    const victimRecord = await verifyRecordValue(recordKey(modelId, victim), victimValue!)
    const forgerKey = await generateKeyPair('Ed25519')
    const answers: Array<[string, Uint8Array]> = [
      // a replay of the victim's genuine record (valid signature, another peer's key)
      ['the victim\'s own record', victimValue!],
      // the attacker's peer id, signed by a key that is not the attacker's
      ['a record of the attacker signed by another key', await signWith(forgerKey, { ...victimRecord, peerId: attackerId, seq: victimRecord.seq + 1 })]
    ]
    for (const [name, value] of answers) {
      await attacker.unhandle(INFO_PROTOCOL)
      await attacker.handle(INFO_PROTOCOL, async stream => {
        const lp = lpStream(stream)
        await lp.read()
        await lp.write(encodeInfoResponse({ type: 'record', value }))
        await stream.close()
      })
      const logged: string[] = []
      expect(await fetchRecord(observer, modelId, attackerId, { log: m => logged.push(m) }), name).toBeUndefined()
      expect(logged.join('\n'), name).toMatch(/no usable record/)
    }
    await attacker.unhandle(INFO_PROTOCOL)
  })

  it('a node of protocol 1.0 (no record-request) is read from the DHT', async () => {
    const key = await generateKeyPair('Ed25519')
    const legacy = await createSwarmHost({ privateKey: key, listen: ['/ip4/127.0.0.1/tcp/0'] })
    try {
      await dialBootstrap(legacy, [harness.bootstrap, ...harness.nodes.map(n => n.ready.addrs[0])])
      const legacyId = legacy.peerId.toString()
      // what a 1.0 node's info handler answers to a request type it does not know
      await legacy.handle(INFO_PROTOCOL, async stream => {
        const lp = lpStream(stream)
        await lp.read()
        await lp.write(encodeInfoResponse({ type: 'error', code: 'malformed-message', message: 'message.type must be one of info-request, ping' }))
        await stream.close()
      })
      const genuine = await verifyRecordValue(recordKey(modelId, victim), (await get(recordKey(modelId, victim)))!)
      const record: SwarmRecord = { ...genuine, peerId: legacyId, version: '1.0.0', addrs: legacy.getMultiaddrs().map(a => a.toString()), seq: Date.now(), expiresAt: Date.now() + 20_000 }
      for await (const event of legacy.services.dht.put(recordKey(modelId, legacyId), await signRecord(record, key), { signal: AbortSignal.timeout(15_000) })) { void event }
      const fetched = await fetchRecord(observer, modelId, legacyId)
      expect(fetched?.peerId).toBe(legacyId)
      expect(fetched?.seq).toBe(record.seq)
    } finally {
      await legacy.stop()
    }
  })

  it('the swarm still generates exactly through the genuine records', async () => {
    const swarm = await Swarm.connect({ bootstrap: [harness.bootstrap] })
    try {
      expect(await generateWith(swarm)).toEqual(localTokens)
    } finally {
      await swarm.close()
    }
  })
})

describe('--allow-peers', () => {
  let harness: SwarmHarness
  let allowed: Swarm
  beforeAll(async () => {
    harness = await setup({ model: modelPath, nodes: [] })
    allowed = await Swarm.connect({ bootstrap: [harness.bootstrap] })
    const allowFile = join(dir, 'allow-peers')
    await writeFile(allowFile, `# the one client allowed\n${allowed.host.peerId.toString()}\n`)
    await harness.addNode({ blocks: [0, L], args: ['--allow-peers', allowFile] })
  })
  afterAll(async () => {
    await allowed?.close()
    await harness?.cleanup()
  })

  it('the listed client generates exactly the local output', async () => {
    expect(await generateWith(allowed)).toEqual(localTokens)
  })

  it('another client is refused with a clear error', async () => {
    const stranger = await Swarm.connect({ bootstrap: [harness.bootstrap] })
    try {
      const err = await generateWith(stranger, { noRouteWaitMs: 500 }).then(() => undefined, e => e as Error)
      console.log(`stranger: ${messages(err).slice(0, 400)}`)
      expect(err).toBeInstanceOf(Error)
      expect(messages(err)).toMatch(/not allowed to open sessions/)
    } finally {
      await stranger.close()
    }
  })
})
