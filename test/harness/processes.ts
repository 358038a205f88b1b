/**
 * Real swarm processes for tests: `swarm-node dht` and `swarm-node serve` started from the built CLI, each waited
 * for until it prints its JSON ready line, with its stderr kept for failure messages. Processes are killed by
 * cleanup() (and by an exit hook, so a crashed test leaves none behind).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = fileURLToPath(new URL('../..', import.meta.url))
export const swarmCli = join(root, 'packages/client/dist/cli.js')
export const nodeCli = join(root, 'packages/node/dist/cli.js')

/** what a CLI run to completion printed, and its exit code (-1 when it ended by a signal) */
export interface CliRun { code: number, stdout: string, stderr: string }

/** runs `node CLI ARGS...` from the repository root to completion (extra `env` on top of this process's) */
export async function runCli (cli: string, args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return await new Promise(resolve => {
    execFile(process.execPath, [cli, ...args], { cwd: root, env: { ...process.env, ...env }, maxBuffer: 256 * 2 ** 20 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr })
    })
  })
}

export interface ReadyLine {
  event: 'ready'
  peerId: string
  addrs: string[]
  blocks?: [number, number]
  modelId?: string
}

export interface SwarmProcess {
  child: ChildProcess
  ready: ReadyLine
  /** everything the process wrote to stderr so far */
  stderr: () => string
  /** resolves with the exit code (or signal name) once the process has exited */
  exited: Promise<number | string>
  kill: (signal?: NodeJS.Signals) => void
}

const live = new Set<ChildProcess>()
process.once('exit', () => { for (const child of live) child.kill('SIGKILL') })

/** Starts `node <cli> args` (optionally wrapped, e.g. in `ip netns exec NS`) and waits for its ready line. */
export async function startProcess (cli: string, args: string[], options: { wrap?: string[], timeoutMs?: number, env?: Record<string, string> } = {}): Promise<SwarmProcess> {
  const command = [...(options.wrap ?? []), process.execPath, cli, ...args]
  const child = spawn(command[0], command.slice(1), { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } })
  live.add(child)
  let stderr = ''
  let stdout = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-64 * 1024) })
  const exited = new Promise<number | string>(resolve => {
    child.once('exit', (code, signal) => { live.delete(child); resolve(code ?? signal ?? -1) })
  })
  const ready = await new Promise<ReadyLine>((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${args[0]} not ready after ${options.timeoutMs ?? 60_000} ms: ${stderr}`)) }, options.timeoutMs ?? 60_000)
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk
      const line = stdout.split('\n').find(l => l.startsWith('{"event":"ready"'))
      if (line !== undefined) { clearTimeout(timer); resolve(JSON.parse(line) as ReadyLine) }
    })
    void exited.then(code => { clearTimeout(timer); reject(new Error(`${args[0]} exited (${code}) before it was ready: ${stderr}`)) })
  })
  return { child, ready, stderr: () => stderr, exited, kill: (signal = 'SIGTERM') => { child.kill(signal) } }
}

/** newest mtime of the .ts sources under `dir` */
async function newestSource (dir: string): Promise<number> {
  let newest = 0
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) {
      newest = Math.max(newest, (await stat(join(entry.parentPath, entry.name))).mtimeMs)
    }
  }
  return newest
}

/** builds the workspace unless the CLIs are newer than every source they are built from */
export async function ensureBuilt (): Promise<void> {
  const built = await Promise.all([swarmCli, nodeCli].map(async f => await stat(f).then(s => s.mtimeMs, () => 0)))
  const sources = await Promise.all(['kernels', 'client', 'node', 'protocol'].map(async p => await newestSource(join(root, 'packages', p, 'src'))))
  if (Math.min(...built) < Math.max(...sources)) execFileSync('npx', ['tsc', '-b'], { cwd: root, stdio: 'inherit' })
}
