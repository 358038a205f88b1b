import { describe, expect, it } from 'vitest'
import type { ChatMessage, Tokenizer } from '@swarm/kernels'
import { encodePrompt, generate, runGeneration, type Runner } from './generate.js'
import { ContextOverflowError, EmptyPromptError, InvalidGenerationOptionError } from './errors.js'

// A byte-level tokenizer: ids 0..255 are bytes, 256 BOS, 257 EOS, 258 a second end-of-turn id.
const BOS = 256
const EOS = 257
const EOT = 258
const VOCAB = 259
const utf8 = new TextEncoder()

function byteTokenizer (options: { addBos?: boolean, template?: (messages: ChatMessage[]) => string } = {}): Tokenizer {
  const addBos = options.addBos ?? true
  return {
    vocabSize: VOCAB,
    specials: { bosTokenId: BOS, eosTokenId: EOS, eosTokenIds: [EOT], addBos, addEos: false },
    encode: (text, opts = {}) => {
      const ids: number[] = []
      if (addBos && opts.addSpecial !== false) ids.push(BOS)
      let rest = text
      while (rest.length > 0) {
        if (opts.parseSpecial === true && rest.startsWith('<s>')) {
          ids.push(BOS)
          rest = rest.slice(3)
          continue
        }
        const cp = String.fromCodePoint(rest.codePointAt(0) as number)
        ids.push(...utf8.encode(cp))
        rest = rest.slice(cp.length)
      }
      return ids
    },
    decode: (ids) => new TextDecoder().decode(Uint8Array.from(ids.filter(id => id < 256))),
    applyChatTemplate: (messages, opts = {}) => {
      if (options.template === undefined) throw new Error('no chat template')
      return options.template(messages) + (opts.addGenerationPrompt === true ? '[assistant]' : '')
    }
  }
}

/** A runner whose greedy continuation is `script` (then EOS); records every forward call. */
function scriptedRunner (script: number[], maxLength = 1024): Runner & { calls: number[][], position: number } {
  const runner = {
    calls: [] as number[][],
    position: 0,
    maxLength,
    forward (tokens: number[]): Float32Array {
      runner.calls.push(tokens.slice())
      runner.position += tokens.length
      if (runner.position > maxLength) throw new Error('runner overflow')
      const step = runner.calls.length - 1
      const logits = new Float32Array(VOCAB).fill(-5)
      logits[step < script.length ? script[step] : EOS] = 5
      return logits
    }
  }
  return runner
}

const bytes = (text: string): number[] => [...utf8.encode(text)]

async function collect (generation: AsyncGenerator<string, unknown>): Promise<{ pieces: string[], result: any }> {
  const pieces: string[] = []
  for (;;) {
    const step = await generation.next()
    if (step.done === true) return { pieces, result: step.value }
    pieces.push(step.value)
  }
}

describe('generate', () => {
  it('streams UTF-8 safely: no piece carries half a character', async () => {
    const text = 'héllo 🌍 ☃!'
    const runner = scriptedRunner(bytes(text))
    const { pieces, result } = await collect(generate(runner, byteTokenizer(), 'hi', { maxTokens: 100 }))
    expect(pieces.join('')).toBe(text)
    expect(pieces.some(p => p.includes('\uFFFD'))).toBe(false)
    expect(pieces.length).toBeGreaterThan(5)
    expect(result.text).toBe(text)
    expect(result.tokens).toEqual([...bytes(text), EOS])
    expect(result.finishReason).toBe('eos')
    expect(result.promptTokens).toBe(3) // BOS h i
    expect(runner.calls[0]).toEqual([BOS, ...bytes('hi')])
    // every generated token but the final EOS was fed back one at a time
    expect(runner.calls.slice(1)).toEqual(bytes(text).map(id => [id]))
  })

  it('emits an invalid byte sequence at the end instead of holding it forever', async () => {
    const result = await runGeneration(scriptedRunner([0x61, 0xe2, 0x82]), byteTokenizer(), 'x')
    expect(result.text).toBe('a\uFFFD')
  })

  it('stops at a stop string, which is neither emitted nor in the text', async () => {
    const runner = scriptedRunner(bytes('abc STOP def'))
    const { pieces, result } = await collect(generate(runner, byteTokenizer(), 'p', { stop: ['STOP', 'xyz'] }))
    expect(pieces.join('')).toBe('abc ')
    expect(result.text).toBe('abc ')
    expect(result.finishReason).toBe('stop')
    expect(result.tokens).toEqual(bytes('abc STOP'))
  })

  it('holds back a possible stop-string prefix and releases it when it does not complete', async () => {
    const seen: string[] = []
    const result = await runGeneration(scriptedRunner(bytes('ab ST x')), byteTokenizer(), 'p', {
      stop: ['STOP'],
      onText: piece => seen.push(piece)
    })
    expect(result.text).toBe('ab ST x')
    expect(seen.join('')).toBe('ab ST x')
    // 'S' and 'ST' were held until 'x' ruled the stop string out
    expect(seen).not.toContain('S')
    expect(result.finishReason).toBe('eos')
  })

  it('ends on any EOS id and at maxTokens', async () => {
    const eot = await runGeneration(scriptedRunner([...bytes('ok'), EOT]), byteTokenizer(), 'p')
    expect(eot.tokens).toEqual([...bytes('ok'), EOT])
    expect(eot.finishReason).toBe('eos')
    const capped = await runGeneration(scriptedRunner(bytes('abcdef')), byteTokenizer(), 'p', { maxTokens: 3 })
    expect(capped.tokens).toEqual(bytes('abc'))
    expect(capped.text).toBe('abc')
    expect(capped.finishReason).toBe('maxTokens')
  })

  it('fills the runner exactly to maxLength and no further', async () => {
    const runner = scriptedRunner(bytes('abcdefgh'), 5) // prompt BOS p = 2 positions
    const result = await runGeneration(runner, byteTokenizer(), 'p')
    expect(result.finishReason).toBe('length')
    expect(runner.position).toBe(5)
    expect(result.tokens).toEqual(bytes('abcd')) // the last one was sampled, never fed back
  })

  it('rejects a prompt longer than the context before any compute', async () => {
    const runner = scriptedRunner([], 4)
    await expect(runGeneration(runner, byteTokenizer(), 'long prompt')).rejects.toThrow(ContextOverflowError)
    await expect(runGeneration(runner, byteTokenizer(), 'long prompt')).rejects.toThrow(/12 tokens, longer than the context of 4/)
    expect(runner.calls).toHaveLength(0)
  })

  it('rejects an empty prompt and bad options', async () => {
    await expect(runGeneration(scriptedRunner([]), byteTokenizer({ addBos: false }), '')).rejects.toThrow(EmptyPromptError)
    await expect(runGeneration(scriptedRunner([]), byteTokenizer(), 'p', { maxTokens: 0 })).rejects.toThrow(InvalidGenerationOptionError)
    await expect(runGeneration(scriptedRunner([]), byteTokenizer(), 'p', { stop: [''] })).rejects.toThrow(InvalidGenerationOptionError)
    await expect(runGeneration(scriptedRunner([]), byteTokenizer(), 'p', { temperature: -1 })).rejects.toThrow(/temperature/)
  })

  it('applies the chat template and keeps a single BOS', async () => {
    const tokenizer = byteTokenizer({ template: messages => '<s>' + messages.map(m => `[${m.role}]${m.content}`).join('') })
    const ids = encodePrompt(tokenizer, 'hi', { chat: true })
    expect(ids).toEqual([BOS, ...bytes('[user]hi[assistant]')])
    const runner = scriptedRunner(bytes('yo'))
    const result = await runGeneration(runner, tokenizer, 'hi', { chat: true })
    expect(runner.calls[0]).toEqual(ids)
    expect(result.text).toBe('yo')
  })

  it('stops between steps when the signal aborts', async () => {
    const controller = new AbortController()
    const runner = scriptedRunner(bytes('abcdefgh'))
    const generation = generate(runner, byteTokenizer(), 'p', { signal: controller.signal })
    expect((await generation.next()).value).toBe('a')
    controller.abort()
    await expect(generation.next()).rejects.toThrow(/abort/i)
    expect(runner.calls).toHaveLength(1)
  })

  it('accepts async runners and reports timings', async () => {
    const sync = scriptedRunner(bytes('xyz'))
    const runner: Runner = { maxLength: 100, forward: async tokens => sync.forward(tokens) }
    const result = await runGeneration(runner, byteTokenizer(), 'p')
    expect(result.text).toBe('xyz')
    for (const key of ['prefillMs', 'decodeMs', 'prefillTokensPerSecond', 'decodeTokensPerSecond'] as const) {
      expect(result.timings[key]).toBeGreaterThanOrEqual(0)
      expect(Number.isFinite(result.timings[key])).toBe(true)
    }
  })

  it('samples deterministically for a seed', async () => {
    // a flat distribution over the letters a..z
    const flat: Runner = {
      maxLength: 1000,
      forward: () => {
        const logits = new Float32Array(VOCAB).fill(-Infinity)
        for (let c = 0x61; c <= 0x7a; c++) logits[c] = 0
        return logits
      }
    }
    const run = async (seed: number): Promise<string> => (await runGeneration(flat, byteTokenizer(), 'p', { temperature: 1, seed, maxTokens: 30 })).text
    expect(await run(5)).toBe(await run(5))
    expect(await run(5)).not.toBe(await run(6))
    expect(await run(5)).toMatch(/^[a-z]{30}$/)
  })
})
