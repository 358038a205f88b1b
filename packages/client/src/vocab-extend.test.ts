import { describe, expect, it } from 'vitest'
import type { GgufVocab } from '@swarm/kernels'
import { extendVocab } from './vocab-extend.js'

const base: GgufVocab = {
  model: 'llama',
  tokens: ['<unk>', '<s>', '</s>', '▁a', '▁tok5'],
  scores: [0, 0, 0, -1, -2],
  tokenTypes: [2, 3, 3, 1, 1],
  bosTokenId: 1,
  eosTokenId: 2,
  addBos: true,
  addEos: false
}

describe('extendVocab', () => {
  it('appends unique normal tokens with decreasing scores below the existing ones', () => {
    const grown = extendVocab(base, 9)
    expect(grown.tokens).toEqual([...base.tokens, '▁tok5_', '▁tok6', '▁tok7', '▁tok8'])
    expect(grown.tokenTypes).toEqual([...base.tokenTypes, 1, 1, 1, 1])
    expect(grown.scores).toEqual([...(base.scores as number[]), -3, -4, -5, -6])
    expect(new Set(grown.tokens).size).toBe(9)
    expect(grown.bosTokenId).toBe(1)
    expect(base.tokens).toHaveLength(5) // the input is not modified
  })

  it('is deterministic and leaves a large enough vocabulary alone', () => {
    expect(extendVocab(base, 1000)).toEqual(extendVocab(base, 1000))
    expect(extendVocab(base, 3)).toBe(base)
    expect(() => extendVocab(base, -1)).toThrow(RangeError)
  })
})
