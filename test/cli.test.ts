/**
 * The built `swarm` and `swarm-node` executables, run as real processes: output formats, agreement with the
 * in-process model, and the one-line error contract for every kind of bad input.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createSampler, LocalModel, loadTokenizer, openModel } from '@swarm/kernels'
import { ensureBuilt, nodeCli, runCli, swarmCli, type CliRun } from './harness/processes.js'

const swarm = async (...args: string[]): Promise<CliRun> => await runCli(swarmCli, args)
const swarmNode = async (...args: string[]): Promise<CliRun> => await runCli(nodeCli, args)

/** the error contract: non-zero exit, exactly one line on stderr starting with the program name, no stack */
function expectOneLineError (result: CliRun, program = 'swarm', code?: number): void {
  expect(result.code, `stdout: ${result.stdout}\nstderr: ${result.stderr}`).not.toBe(0)
  if (code !== undefined) expect(result.code, result.stderr).toBe(code)
  const lines = result.stderr.split('\n').filter(line => line.length > 0)
  expect(lines, result.stderr).toHaveLength(1)
  expect(lines[0].startsWith(`${program}: `)).toBe(true)
  expect(result.stderr).not.toMatch(/^\s+at /m)
}

/** stdout must be one JSON document and nothing else */
function parseJson (result: CliRun): any {
  expect(result.code, result.stderr).toBe(0)
  expect(result.stdout.trim().split('\n')).toHaveLength(1)
  return JSON.parse(result.stdout)
}

let dir: string
let gguf: string
let hf: string

beforeAll(async () => {
  await ensureBuilt()
  dir = await mkdtemp(join(tmpdir(), 'swarm-cli-'))
  gguf = join(dir, 'tiny.gguf')
  hf = join(dir, 'tiny-hf')
  const made = await Promise.all([
    swarm('make-model', '--out', gguf, '--preset', 'tiny', '--seed', '7'),
    swarm('make-model', '--out', hf, '--preset', 'tiny-qwen2', '--format', 'hf', '--dtype', 'f16', '--seed', '3')
  ])
  for (const m of made) expect(m.code, m.stderr).toBe(0)
})

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true })
})

describe('help', () => {
  it('swarm --help and every subcommand --help', async () => {
    const top = await swarm('--help')
    expect(top.code).toBe(0)
    for (const command of ['generate', 'logits', 'tokenize', 'bench', 'make-model']) {
      expect(top.stdout).toContain(command)
      const sub = await swarm(command, '--help')
      expect(sub.code, sub.stderr).toBe(0)
      expect(sub.stdout).toContain(`Usage: swarm ${command}`)
    }
  })

  it('swarm-node --help lists serve, dht and inspect, each with its own --help', async () => {
    const top = await swarmNode('--help')
    expect(top.code).toBe(0)
    for (const command of ['serve', 'dht', 'inspect']) {
      expect(top.stdout).toContain(command)
      const sub = await swarmNode(command, '--help')
      expect(sub.code, sub.stderr).toBe(0)
      expect(sub.stdout).toContain(`Usage: swarm-node ${command}`)
    }
  })
})

describe('swarm generate --local', () => {
  const prompt = 'hello world'

  it('--json prints one result object equal to greedy decoding in-process', async () => {
    const result = parseJson(await swarm('generate', '--local', '--model', gguf, '--prompt', prompt, '--max-tokens', '12', '--temperature', '0', '--json'))
    expect(Object.keys(result).sort()).toEqual(['finishReason', 'promptTokens', 'text', 'timings', 'tokens'])
    expect(result.tokens.length).toBeGreaterThan(0)
    expect(result.tokens.length).toBeLessThanOrEqual(12)
    expect(typeof result.text).toBe('string')
    for (const key of ['loadMs', 'prefillMs', 'decodeMs', 'prefillTokensPerSecond', 'decodeTokensPerSecond']) {
      expect(typeof result.timings[key]).toBe('number')
    }

    const source = await openModel(gguf)
    try {
      const tokenizer = await loadTokenizer(source)
      const model = await LocalModel.load(source)
      const ids = tokenizer.encode(prompt)
      expect(result.promptTokens).toBe(ids.length)
      const session = model.createSession(ids.length + 12)
      const sampler = createSampler({ temperature: 0 })
      const eos = new Set([...tokenizer.specials.eosTokenIds, tokenizer.specials.eosTokenId])
      const history = ids.slice()
      const expected: number[] = []
      let logits = session.forward(ids)
      for (;;) {
        const next = sampler.sample(logits, history)
        expected.push(next)
        history.push(next)
        if (eos.has(next) || expected.length === 12) break
        logits = session.forward([next])
      }
      expect(result.tokens).toEqual(expected)
      const generated = expected.filter(id => !eos.has(id))
      expect(result.text).toBe(tokenizer.decode([...ids, ...generated]).slice(tokenizer.decode(ids).length))
    } finally {
      await source.close()
    }
  })

  it('streams the same text without --json', async () => {
    const args = ['generate', '--local', '--model', gguf, '--prompt', prompt, '--max-tokens', '8']
    const json = parseJson(await swarm(...args, '--json'))
    const streamed = await swarm(...args)
    expect(streamed.code, streamed.stderr).toBe(0)
    expect(streamed.stdout).toBe(json.text + '\n')
  })

  it('runs an HF directory with sampling, reproducibly for a seed', async () => {
    const args = ['generate', '--local', '--model', hf, '--prompt', 'abc', '--max-tokens', '6', '--temperature', '0.8', '--top-k', '20', '--top-p', '0.9', '--seed', '5', '--json']
    const [a, b] = await Promise.all([swarm(...args), swarm(...args)])
    expect(parseJson(a).tokens).toEqual(parseJson(b).tokens)
  })
})

describe('swarm tokenize, logits, bench; swarm-node inspect', () => {
  it('tokenize prints the ids of the model tokenizer, with and without specials', async () => {
    const source = await openModel(gguf)
    try {
      const tokenizer = await loadTokenizer(source)
      const withSpecial = parseJson(await swarm('tokenize', '--model', gguf, '--text', 'hello world'))
      expect(withSpecial).toEqual(tokenizer.encode('hello world'))
      const plain = parseJson(await swarm('tokenize', '--model', gguf, '--text', 'hello world', '--no-special'))
      expect(plain).toEqual(tokenizer.encode('hello world', { addSpecial: false }))
    } finally {
      await source.close()
    }
  })

  it('logits prints [positions][vocab] float32 values exactly', async () => {
    const tokens = [1, 5, 9, 2]
    const { logits } = parseJson(await swarm('logits', '--model', gguf, '--tokens', tokens.join(','), '--json'))
    const source = await openModel(gguf)
    try {
      const { vocabSize } = source.config
      expect(logits).toHaveLength(tokens.length)
      for (const row of logits) expect(row).toHaveLength(vocabSize)
      const expected = (await LocalModel.load(source)).createSession(tokens.length).forward(tokens, { allLogits: true })
      expect(Float32Array.from(logits.flat() as number[])).toEqual(expected)
    } finally {
      await source.close()
    }
  })

  it('bench --json reports the figures', async () => {
    const result = parseJson(await swarm('bench', '--model', gguf, '--prompt-tokens', '8', '--gen-tokens', '4', '--json'))
    expect(result).toMatchObject({ model: gguf, promptTokens: 8, genTokens: 4, fileBytes: (await stat(gguf)).size })
    for (const key of ['loadMs', 'prefillTokensPerSecond', 'decodeTokensPerSecond', 'peakRssBytes']) {
      expect(result[key]).toBeGreaterThan(0)
    }
  })

  it('make-model is deterministic for a seed', async () => {
    const again = join(dir, 'again.gguf')
    expect((await swarm('make-model', '--out', again, '--preset', 'tiny', '--seed', '7')).code).toBe(0)
    expect(Buffer.compare(await readFile(again), await readFile(gguf))).toBe(0)
  })

  it('swarm-node inspect lists exactly the tensors of the block range', async () => {
    const all = parseJson(await swarmNode('inspect', '--model', gguf, '--json'))
    const one = parseJson(await swarmNode('inspect', '--model', gguf, '--blocks', '1:2', '--json'))
    expect(one.blocks).toEqual({ start: 1, end: 2 })
    expect(one.config.nLayers).toBe(all.config.nLayers)
    expect(one.tensors.length).toBeGreaterThan(0)
    expect(one.tensors.every((t: { name: string }) => t.name.startsWith('blk.1.'))).toBe(true)
    expect(one.totalBytes).toBe(one.tensors.reduce((s: number, t: { byteLength: number }) => s + t.byteLength, 0))
    expect(all.tensors.length).toBe(one.tensors.length * all.config.nLayers)
    const human = await swarmNode('inspect', '--model', hf, '--blocks', '0:1')
    expect(human.code, human.stderr).toBe(0)
    expect(human.stdout).toContain('blk.0.attn_q.bias')
  })
})

/** a copy of the GGUF at `path` with one header field patched */
async function patchedGguf (name: string, patch: (bytes: Buffer) => void): Promise<string> {
  const bytes = await readFile(gguf)
  patch(bytes)
  const out = join(dir, name)
  await writeFile(out, bytes)
  return out
}

describe('bad input: one line on stderr, no stack, non-zero exit', () => {
  it.each([
    ['an unknown command', ['frobnicate'], 2],
    ['an unknown flag', ['generate', '--local', '--model', 'M', '--prompt', 'x', '--bogus'], 2],
    ['a stray positional argument', ['tokenize', '--model', 'M', '--text', 'x', 'extra'], 2],
    ['generate without --local', ['generate', '--model', 'M', '--prompt', 'x'], 2],
    ['a missing --prompt', ['generate', '--local', '--model', 'M'], 2],
    ['a negative temperature', ['generate', '--local', '--model', 'M', '--prompt', 'x', '--temperature', '-1'], 2],
    ['a non-numeric temperature', ['generate', '--local', '--model', 'M', '--prompt', 'x', '--temperature', 'warm'], 2],
    ['top-p above 1', ['generate', '--local', '--model', 'M', '--prompt', 'x', '--top-p', '1.5'], 2],
    ['zero max tokens', ['generate', '--local', '--model', 'M', '--prompt', 'x', '--max-tokens', '0'], 2],
    ['a fractional top-k', ['generate', '--local', '--model', 'M', '--prompt', 'x', '--top-k', '2.5'], 2],
    ['an empty stop string', ['generate', '--local', '--model', 'M', '--prompt', 'x', '--stop', ''], 2],
    ['non-numeric token ids', ['logits', '--model', 'M', '--tokens', '1,x'], 2],
    ['a missing flag value', ['tokenize', '--model'], 2],
    ['an unknown dtype', ['make-model', '--out', 'OUT', '--dtype', 'q9_9'], 2],
    ['an unknown preset', ['make-model', '--out', 'OUT', '--preset', 'huge'], 2],
    ['a missing model file', ['generate', '--local', '--model', 'MISSING', '--prompt', 'x', '--json'], 1],
    ['a missing model for tokenize', ['tokenize', '--model', 'MISSING', '--text', 'x'], 1],
    ['a token id out of range', ['logits', '--model', 'M', '--tokens', '1,999999', '--json'], 1],
    ['a prompt longer than the context', ['generate', '--local', '--model', 'M', '--prompt', 'a long prompt of many words', '--context', '2', '--json'], 1],
    ['a bench longer than the context', ['bench', '--model', 'M', '--prompt-tokens', '100000'], 1]
  ])('%s', async (_what, args, code) => {
    const resolved = args.map(a => a === 'M' ? gguf : a === 'MISSING' ? join(dir, 'nope.gguf') : a === 'OUT' ? join(dir, 'x.gguf') : a)
    const result = await swarm(...resolved)
    expectOneLineError(result, 'swarm', code)
    if (resolved.includes('--json')) expect(result.stdout).toBe('')
  })

  it('a corrupt file', async () => {
    const junk = join(dir, 'junk.gguf')
    await writeFile(junk, Buffer.from('GGUF this is not really a gguf file at all'))
    expectOneLineError(await swarm('generate', '--local', '--model', junk, '--prompt', 'x'), 'swarm', 1)
    const truncated = join(dir, 'truncated.gguf')
    await writeFile(truncated, (await readFile(gguf)).subarray(0, 200))
    expectOneLineError(await swarm('logits', '--model', truncated, '--tokens', '1'), 'swarm', 1)
    expectOneLineError(await swarmNode('inspect', '--model', junk), 'swarm-node', 1)
  })

  it('an unsupported architecture', async () => {
    const path = await patchedGguf('bloom.gguf', bytes => {
      const key = bytes.indexOf('general.architecture')
      // key, then value type (u32), string length (u64), then the string itself
      const value = bytes.indexOf('llama', key)
      expect(value).toBe(key + 'general.architecture'.length + 12)
      bytes.write('bloom', value)
    })
    expectOneLineError(await swarm('generate', '--local', '--model', path, '--prompt', 'x'), 'swarm', 1)
  })

  it('an unsupported tensor dtype', async () => {
    const path = await patchedGguf('dtype.gguf', bytes => {
      const name = bytes.indexOf('blk.0.attn_q.weight')
      // tensor info: name, n_dims (u32), dims (u64 each), ggml type (u32), offset (u64)
      const dimsAt = name + 'blk.0.attn_q.weight'.length
      const nDims = bytes.readUInt32LE(dimsAt)
      bytes.writeUInt32LE(99, dimsAt + 4 + 8 * nDims)
    })
    expectOneLineError(await swarm('generate', '--local', '--model', path, '--prompt', 'x'), 'swarm', 1)
  })

  it('SWARM_DEBUG=1 adds the stack', async () => {
    const result = await runCli(swarmCli, ['tokenize', '--model', join(dir, 'nope.gguf'), '--text', 'x'], { SWARM_DEBUG: '1' })
    expect(result.code).toBe(1)
    expect(result.stderr).toMatch(/^swarm: no such file or directory/)
    expect(result.stderr).toMatch(/^\s+at /m)
  })

  it('swarm-node: bad ranges, missing model, unknown command', async () => {
    // without --model, serve loads the default model (4 blocks) and refuses a range beyond it before joining anything
    expectOneLineError(await swarmNode('serve', '--blocks', '0:99'), 'swarm-node', 1)
    expectOneLineError(await swarmNode('inspect', '--model', gguf, '--blocks', '2:1'), 'swarm-node', 1)
    expectOneLineError(await swarmNode('inspect', '--model', gguf, '--blocks', '0:99'), 'swarm-node', 1)
    expectOneLineError(await swarmNode('inspect', '--model', gguf, '--blocks', 'all'), 'swarm-node', 2)
    expectOneLineError(await swarmNode('inspect', '--model', join(dir, 'nope.gguf')), 'swarm-node', 1)
    expectOneLineError(await swarmNode('inspect', '--model', gguf, '--bogus'), 'swarm-node', 2)
    expectOneLineError(await swarmNode('serve', '--blocks', 'x'), 'swarm-node', 2)
    expectOneLineError(await swarmNode('serve', '--model', join(dir, 'nope.gguf')), 'swarm-node', 1)
    expectOneLineError(await swarmNode('frobnicate'), 'swarm-node', 2)
  })
})
