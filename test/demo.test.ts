/**
 * The README's main command (`npm run demo` = setup + scripts/demo.mjs), run as a user runs it, minus the install:
 * a `swarm-node dht` and three `swarm-node serve` nodes without `--model` (so the embedded default model), blocks split
 * 0:2 2:3 3:4, `swarm status`, `swarm generate --bootstrap` without `--model`, then SIGTERM to everything.
 * - exit status 0, every node and the dht exited 0 after going offline;
 * - the status table shows the three ranges and "every block is served";
 * - greedy text through the swarm equals `swarm generate --local` (again without `--model`) on the default model.
 */
import { execFile } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const PROMPT = 'And the king said unto'
const MAX_TOKENS = '24'

function run (args: string[], env: Record<string, string> = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, args, { cwd: root, env: { ...process.env, ...env }, maxBuffer: 16 * 2 ** 20 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr })
    })
  })
}

describe('npm run demo (scripts/demo.mjs)', () => {
  it('runs a 4-process swarm on the default model, streams the same text as a local run and shuts down cleanly', async () => {
    const [demo, local] = await Promise.all([
      run(['scripts/demo.mjs', '--temperature', '0'], { PROMPT, MAX_TOKENS }),
      run(['packages/client/bin/swarm.js', 'generate', '--local', '--prompt', PROMPT, '--max-tokens', MAX_TOKENS, '--temperature', '0'])
    ])
    expect(demo.code, demo.stderr).toBe(0)
    expect(local.code, local.stderr).toBe(0)
    for (const range of ['[0, 2)', '[2, 3)', '[3, 4)']) expect(demo.stdout).toContain(`blocks ${range}`)
    expect(demo.stdout).toContain('every block is served')
    const text = local.stdout.trim()
    expect(text.length).toBeGreaterThan(20)
    expect(demo.stdout).toContain(text)
    for (const name of ['node-1', 'node-2', 'node-3', 'dht']) expect(demo.stderr).toContain(`${name} exited with status 0`)
    expect(demo.stderr).toContain('every process exited cleanly')
  }, 120_000)
})
