/**
 * scripts/swarm-scenario.sh, the one script behind docker/compose.yaml: its `local` mode runs the whole scenario (dht,
 * three nodes, client generation compared with --local, clean shutdown) on loopback; where network namespaces work,
 * its compose roles (dht | node | client with LISTEN_HOST=auto and a shared directory) run each on a host of its own,
 * as compose runs them in containers. No Docker engine runs here, so the compose file and Dockerfile are checked
 * structurally: every service runs the script with its role, and the nodes cover the model's blocks.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ensureBuilt, root } from './harness/processes.js'
import { createNetnsLab, netnsUnavailableReason, type NetnsLab } from './harness/netns.js'

const script = join(root, 'scripts/swarm-scenario.sh')
const VERDICT = /^swarm-scenario: swarm text equals local text \(32 tokens\): /m

interface Run { code: number | string, stdout: string, stderr: string }

/** runs a command in a process group of its own, killed as a whole if it outlives timeoutMs */
async function run (command: string[], env: Record<string, string>, timeoutMs = 50_000): Promise<Run> {
  return await new Promise(resolve => {
    const child = spawn(command[0], command.slice(1), { cwd: root, env: { ...process.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    const timer = setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL') } catch {} }, timeoutMs)
    child.once('close', (code, signal) => { clearTimeout(timer); resolve({ code: code ?? signal ?? -1, stdout, stderr }) })
  })
}

/** the JSON results the client role prints on its `swarm:` and `local:` lines */
function results (stdout: string): { swarm: { tokens: number[], text: string }, local: { tokens: number[], text: string } } {
  const line = (prefix: string): { tokens: number[], text: string } => {
    const found = stdout.split('\n').find(l => l.startsWith(prefix))
    expect(found, `no '${prefix}' line in:\n${stdout}`).toBeDefined()
    return JSON.parse(found!.slice(prefix.length)) as { tokens: number[], text: string }
  }
  return { swarm: line('swarm: '), local: line('local: ') }
}

let dir: string
let modelPath: string

beforeAll(async () => {
  await ensureBuilt()
  dir = await mkdtemp(join(tmpdir(), 'swarm-scenario-'))
  modelPath = join(dir, 'tiny-q8_0.gguf')
  const made = await new Promise<{ code: number, stderr: string }>(resolve => {
    execFile(process.execPath, [join(root, 'packages/client/bin/swarm.js'), 'make-model', '--preset', 'tiny', '--dtype', 'q8_0', '--out', modelPath],
      { cwd: root }, (error, _stdout, stderr) => { resolve({ code: error === null ? 0 : 1, stderr }) })
  })
  expect(made.code, made.stderr).toBe(0)
})

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

const netnsReason = netnsUnavailableReason()
if (netnsReason !== undefined) console.warn(`swarm-scenario: compose roles across namespaces skipped: ${netnsReason}`)

// the three scenarios are independent (own shared directories, ports, namespaces): they run side by side
describe.concurrent('swarm-scenario.sh', () => {
  let lab: NetnsLab | undefined
  const roles: Array<{ name: string, child: ChildProcess, exited: Promise<number | string>, output: () => string }> = []

  afterAll(async () => {
    for (const role of roles) try { process.kill(-role.child.pid!, 'SIGKILL') } catch {}
    await lab?.cleanup()
  })

  it('local: runs dht + three nodes + client on loopback, the swarm text equals the local text, and everything exits 0', async () => {
    const result = await run(['bash', script, 'local'], { MODEL: modelPath })
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0)
    expect(result.stdout).toMatch(VERDICT)
    const { swarm, local } = results(result.stdout)
    expect(swarm.tokens).toHaveLength(32)
    expect(swarm.tokens).toEqual(local.tokens)
    expect(swarm.text).toBe(local.text)
    expect(result.stdout).toMatch(/^swarm-scenario: local: model .*, nodes 0:2 2:4 4:6$/m)
    for (const name of ['node0', 'node1', 'node2', 'dht']) expect(result.stdout).toContain(`swarm-scenario: local: ${name} exited 0\n`)
    expect(result.stdout).toMatch(/^swarm-scenario: local: scenario passed/m)
    // the roles' own output (their ready lines) went to stderr, each line tagged with the role
    expect(result.stderr).toMatch(/^\[node1\] \{"event":"ready",.*"blocks":\[2,4\]/m)
  })

  it('local: fails fast, naming the node, when a node cannot start', async () => {
    const result = await run(['bash', script, 'local'], { MODEL: modelPath, SPLIT: '0:2 2:9 5:6', WAIT_TIMEOUT: '30' })
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/^swarm-scenario: local: node1 exited before it was ready$/m)
    expect(result.stderr).toMatch(/invalid block range 2:9/)
  })

  /** starts `swarm-scenario.sh ROLE` inside host i with compose's environment */
  function startRole (name: string, host: number, role: string, env: Record<string, string>): void {
    const child = spawn('ip', ['netns', 'exec', lab!.hosts[host].ns, 'bash', script, role], {
      // a process group of its own, so that a failed test can kill the role's swarm-node along with it
      cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true
    })
    let output = ''
    child.stdout!.setEncoding('utf8').on('data', (d: string) => { output += d })
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { output += d })
    const exited = new Promise<number | string>(resolve => { child.once('exit', (code, signal) => { resolve(code ?? signal ?? -1) }) })
    roles.push({ name, child, exited, output: () => output })
  }

  // the compose roles, each in a network namespace of its own as each runs in a container of its own under compose
  it.skipIf(netnsReason !== undefined)(`compose roles in one network namespace each${netnsReason !== undefined ? ` (skipped: ${netnsReason})` : ''}: dht, node and client with LISTEN_HOST=auto and a shared directory give the --local text and exit 0`, async () => {
    lab = await createNetnsLab({ hosts: 5 })
    const shared = join(dir, 'shared')
    await mkdir(shared)
    const env = { MODEL: modelPath, SHARED_DIR: shared, LISTEN_HOST: 'auto', THREADS: '1', WAIT_TIMEOUT: '40' }
    startRole('dht', 0, 'dht', env)
    for (const [i, blocks] of ['0:2', '2:4', '4:6'].entries()) startRole(`node${i}`, i + 1, 'node', { ...env, BLOCKS: blocks, NODE_NAME: `node${i}` })
    const client = await run(['ip', 'netns', 'exec', lab.hosts[4].ns, 'bash', script, 'client'], { ...env, WAIT_NODES: '3' })
    const logs = roles.map(r => `[${r.name}]\n${r.output()}`).join('\n')
    expect(client.code, `${client.stdout}\n${client.stderr}\n${logs}`).toBe(0)
    expect(client.stdout).toMatch(VERDICT)
    const { swarm, local } = results(client.stdout)
    expect(swarm.tokens).toEqual(local.tokens)

    // each role found its own namespace address: the bootstrap file names host 0, every node listens on its host
    expect(await readFile(join(shared, 'bootstrap'), 'utf8')).toMatch(new RegExp(`^/ip4/${lab.hosts[0].address.replaceAll('.', '\\.')}/tcp/\\d+/p2p/\\w+\\n$`))
    expect((await readdir(shared)).filter(f => f.startsWith('ready-node-')).sort()).toEqual(['ready-node-node0.json', 'ready-node-node1.json', 'ready-node-node2.json'])
    for (let i = 0; i < 3; i++) {
      const ready = JSON.parse(await readFile(join(shared, `ready-node-node${i}.json`), 'utf8')) as { addrs: string[], blocks: number[] }
      expect(ready.blocks).toEqual([2 * i, 2 * i + 2])
      for (const addr of ready.addrs) expect(addr.startsWith(`/ip4/${lab.hosts[i + 1].address}/tcp/`)).toBe(true)
    }

    // compose's `docker stop`: SIGTERM to each role, which passes it on to its swarm-node and exits with its status
    for (const role of roles.slice(1)) role.child.kill('SIGTERM')
    expect(await Promise.all(roles.slice(1).map(async r => await r.exited))).toEqual([0, 0, 0])
    roles[0].child.kill('SIGTERM')
    expect(await roles[0].exited).toBe(0)
  })
})

describe('docker/compose.yaml and docker/Dockerfile', () => {
  const composePath = join(root, 'docker/compose.yaml')

  it('every compose service runs swarm-scenario.sh with its role; the nodes split the blocks of the baked-in model', async () => {
    const text = await readFile(composePath, 'utf8')
    // no YAML parser among our dependencies: a structural check of the parts that matter
    const services = text.slice(text.indexOf('\nservices:\n'), text.indexOf('\nvolumes:\n'))
    const names = [...services.matchAll(/^ {2}([a-z0-9-]+):$/gm)].map(m => m[1])
    expect(names).toEqual(['dht', 'node0', 'node1', 'node2', 'client'])
    const bodies = services.split(/^ {2}[a-z0-9-]+:$/m).slice(1)
    const roleOf = bodies.map(body => /^ {4}command: \["(dht|node|client)"\]$/m.exec(body)?.[1])
    expect(roleOf).toEqual(['dht', 'node', 'node', 'node', 'client'])
    for (const body of bodies) expect(body).toMatch(/^ {4}<<: \*swarm$/m)
    expect(text).toMatch(/^ {2}entrypoint: \["bash", "\/opt\/swarm\/scripts\/swarm-scenario\.sh"\]$/m)
    const blocks = bodies.slice(1, 4).map(body => /^ {6}BLOCKS: "(\d+):(\d+)"$/m.exec(body)!.slice(1).map(Number))
    expect(blocks).toEqual([[0, 2], [2, 3], [3, 4]]) // the default model has 4 blocks
    expect(bodies[4]).toMatch(/^ {6}WAIT_NODES: "3"$/m)
    expect(bodies[4]).toMatch(/^ {6}COMPARE_LOCAL: "1"$/m)
    expect(text).toMatch(/^ {2}MODEL: \/opt\/swarm\/packages\/kernels\/default-model\/kjv-llama-4m-f16\.gguf$/m)
    expect(text).toMatch(/^ {2}LISTEN_HOST: auto$/m)
  })

  it('the compose file is valid YAML with the same structure (checked by docker compose or PyYAML when present)', async (context) => {
    const viaDocker = await run(['docker', 'compose', '-f', composePath, 'config', '--format', 'json'], {}, 20_000).catch(() => undefined)
    let config: { services: Record<string, { command: string[], entrypoint: string[], environment: Record<string, string | null> }> } | undefined
    if (viaDocker?.code === 0) {
      config = JSON.parse(viaDocker.stdout)
    } else {
      const viaPython = await run(['python3', '-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))', composePath], {}, 20_000).catch(() => undefined)
      if (viaPython?.code === 0) config = JSON.parse(viaPython.stdout)
    }
    if (config === undefined) {
      console.warn('swarm-scenario: neither `docker compose config` nor python3 with PyYAML is available; the structural check above stands alone')
      context.skip()
      return
    }
    expect(Object.keys(config.services).sort()).toEqual(['client', 'dht', 'node0', 'node1', 'node2'])
    for (const [name, service] of Object.entries(config.services)) {
      expect(service.entrypoint).toEqual(['bash', '/opt/swarm/scripts/swarm-scenario.sh'])
      expect(service.command).toEqual([name.replace(/\d+$/, '')])
      expect(service.environment.MODEL).toBe('/opt/swarm/packages/kernels/default-model/kjv-llama-4m-f16.gguf')
      expect(service.environment.SHARED_DIR).toBe('/shared')
    }
    expect(['node0', 'node1', 'node2'].map(n => config!.services[n].environment.BLOCKS)).toEqual(['0:2', '2:3', '3:4'])
  })

  it('the Dockerfile builds on node:20-bookworm-slim with the README setup, ships the default model and uses swarm-node as entrypoint', async () => {
    const text = await readFile(join(root, 'docker/Dockerfile'), 'utf8')
    expect(text).toMatch(/^FROM node:20-bookworm-slim$/m)
    expect(text).toMatch(/^COPY \. \.$/m)
    expect(text).toMatch(/^RUN bash scripts\/setup\.sh/m)
    // the build context (the repository, packages/kernels/default-model included) keeps the default model
    const ignore = await readFile(join(root, 'docker/Dockerfile.dockerignore'), 'utf8')
    expect(ignore).not.toMatch(/default-model|^packages\/?$|^\*\*?$/m)
    await stat(join(root, 'packages/kernels/default-model/kjv-llama-4m-f16.gguf'))
    expect(text).toMatch(/^ENTRYPOINT \["swarm-node"\]$/m)
  })
})
