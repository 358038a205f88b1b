/**
 * Several "hosts" on one machine for multi-host tests: one Linux network namespace per host, each with `lo` up and
 * one `eth0` (a veth pair) plugged into a bridge that lives in a hub namespace of its own. Everything is created
 * inside namespaces this module makes: the root namespace's interfaces and routes are never touched, and the
 * private subnet (10.231.X.0/24) is reachable only from those namespaces. `cleanup()` deletes every namespace it
 * made, which also removes their veths and the bridge.
 *
 * ```ts
 * const reason = netnsUnavailableReason()          // undefined where namespaces work (root, `ip`, netns add ok)
 * const lab = await createNetnsLab({ hosts: 3 })
 * startProcess(cli, args, { wrap: lab.hosts[0].wrap }) // runs `ip netns exec <ns> node cli ...`
 * await lab.cleanup()
 * ```
 */
import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'

const exec = promisify(execFile)

/** every namespace this module makes is named `swt<pid><tag>...`; the pid tells a leftover from a live run */
const PREFIX = 'swt'

export interface NetnsHost {
  /** namespace name */
  ns: string
  /** this host's address on the lab subnet */
  address: string
  /** command prefix that runs a command inside this host: ['ip', 'netns', 'exec', ns] */
  wrap: string[]
}

export interface NetnsLab {
  /** the namespace holding the bridge */
  hub: string
  hosts: NetnsHost[]
  /** the lab subnet, e.g. 10.231.17.0/24 */
  subnet: string
  /** deletes every namespace the lab made (idempotent, never throws) */
  cleanup: () => Promise<void>
}

async function ip (...args: string[]): Promise<void> {
  try {
    await exec('ip', args, { timeout: 10_000 })
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? ''
    throw new Error(`ip ${args.join(' ')} failed: ${stderr.trim() !== '' ? stderr.trim() : (err as Error).message}`, { cause: err })
  }
}

function listNamespaces (): string[] {
  const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  return out.split('\n').map(line => line.trim().split(/\s+/)[0]).filter(name => name !== undefined && name !== '')
}

/**
 * Why network namespaces cannot be used here, or undefined when they can. It really creates (and deletes) a probe
 * namespace, so "root but namespaces forbidden" (e.g. an unprivileged container) is caught too.
 */
export function netnsUnavailableReason (): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`
  if (process.getuid?.() !== 0) return `network namespaces need root (uid ${process.getuid?.()})`
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' })
  } catch {
    return 'the `ip` command (iproute2) is not installed'
  }
  const probe = `${PREFIX}${process.pid}probe`
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: ['ignore', 'ignore', 'pipe'] })
  } catch (err) {
    const stderr = String((err as { stderr?: Buffer }).stderr ?? '').trim()
    return `\`ip netns add\` failed: ${stderr !== '' ? stderr : (err as Error).message}`
  }
  try {
    execFileSync('ip', ['netns', 'exec', probe, 'ip', 'link', 'set', 'lo', 'up'], { stdio: ['ignore', 'ignore', 'pipe'] })
  } catch (err) {
    return `\`ip netns exec\` failed: ${String((err as { stderr?: Buffer }).stderr ?? '').trim()}`
  } finally {
    try { execFileSync('ip', ['netns', 'delete', probe], { stdio: 'ignore' }) } catch {}
  }
  return undefined
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** deletes namespaces left by earlier runs of this module whose process is gone (a SIGKILLed test run) */
export async function removeStaleNamespaces (): Promise<string[]> {
  const stale = listNamespaces().filter(name => {
    const match = /^swt(\d+)[a-z]/.exec(name)
    return match !== null && Number(match[1]) !== process.pid && !alive(Number(match[1]))
  })
  for (const name of stale) await ip('netns', 'delete', name).catch(() => {})
  return stale
}

let labCount = 0

/**
 * Creates `hosts` namespaces on one bridged /24. Host i gets address .(i + 2); the hub namespace has no address.
 * On any failure everything made so far is deleted before the error is thrown.
 */
export async function createNetnsLab (options: { hosts: number, subnetOctet?: number }): Promise<NetnsLab> {
  if (options.hosts < 1 || options.hosts > 200) throw new RangeError(`hosts must be in [1, 200], got ${options.hosts}`)
  await removeStaleNamespaces()
  const tag = `${PREFIX}${process.pid}${String.fromCharCode(97 + (labCount++ % 26))}`
  // namespaces are isolated from the root one, so two concurrent labs on one subnet would not collide anyway;
  // the pid-derived octet only keeps addresses in logs unambiguous
  const octet = options.subnetOctet ?? (process.pid % 250) + 1
  const subnet = `10.231.${octet}.0/24`
  const hub = `${tag}hub`
  const made: string[] = []
  const cleanup = async (): Promise<void> => {
    // hosts first: deleting a host namespace destroys its eth0 and with it the veth peer on the hub's bridge
    for (const ns of [...made].reverse()) {
      await ip('netns', 'delete', ns).catch(() => {})
    }
    made.length = 0
  }
  try {
    await ip('netns', 'add', hub)
    made.push(hub)
    await ip('-n', hub, 'link', 'set', 'lo', 'up')
    // STP off and no forward delay: ports forward as soon as they are up
    await ip('-n', hub, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0')
    await ip('-n', hub, 'link', 'set', 'br0', 'up')
    const hosts: NetnsHost[] = []
    for (let i = 0; i < options.hosts; i++) {
      const ns = `${tag}h${i}`
      const address = `10.231.${octet}.${i + 2}`
      await ip('netns', 'add', ns)
      made.push(ns)
      await ip('-n', ns, 'link', 'set', 'lo', 'up')
      // the pair is created inside the hub and its peer moved straight into the host: never in the root namespace
      await ip('-n', hub, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
      await ip('-n', hub, 'link', 'set', `v${i}`, 'master', 'br0')
      await ip('-n', hub, 'link', 'set', `v${i}`, 'up')
      await ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0')
      await ip('-n', ns, 'link', 'set', 'eth0', 'up')
      hosts.push({ ns, address, wrap: ['ip', 'netns', 'exec', ns] })
    }
    return { hub, hosts, subnet, cleanup }
  } catch (err) {
    await cleanup()
    throw err
  }
}

/** names of the namespaces that currently exist (for tests that check cleanup) */
export function namespaces (): string[] {
  return listNamespaces()
}
