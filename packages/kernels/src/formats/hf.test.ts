import { describe, expect, it } from 'vitest'
import { generationDefaultsFromHf, modelConfigFromHf } from './hf.js'

const llamaConfig = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 2048,
  intermediate_size: 5632,
  num_hidden_layers: 22,
  num_attention_heads: 32,
  num_key_value_heads: 4,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  max_position_embeddings: 2048,
  vocab_size: 32000,
  tie_word_embeddings: false
}

describe('modelConfigFromHf', () => {
  it('reads a TinyLlama config (halves RoPE, no bias)', () => {
    expect(modelConfigFromHf(llamaConfig)).toEqual({
      architecture: 'llama', nLayers: 22, dim: 2048, nHeads: 32, nKvHeads: 4, headDim: 64, ffnDim: 5632, vocabSize: 32000,
      contextLength: 2048, rmsNormEps: 1e-5, ropeTheta: 10000, ropeStyle: 'halves', tiedEmbeddings: false, qkvBias: false
    })
  })

  it('reads mistral, qwen2 (always qkv bias) and attention_bias', () => {
    expect(modelConfigFromHf({ ...llamaConfig, architectures: ['MistralForCausalLM'], model_type: 'mistral' }).architecture).toBe('mistral')
    const qwen = modelConfigFromHf({ ...llamaConfig, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', tie_word_embeddings: true, rope_theta: 1e6 })
    expect(qwen).toMatchObject({ architecture: 'qwen2', qkvBias: true, tiedEmbeddings: true, ropeTheta: 1e6, ropeStyle: 'halves' })
    expect(modelConfigFromHf({ ...llamaConfig, attention_bias: true }).qkvBias).toBe(true)
    const { architectures, ...noArch } = llamaConfig
    expect(architectures).toBeDefined()
    expect(modelConfigFromHf(noArch).architecture).toBe('llama')
    expect(modelConfigFromHf({ ...llamaConfig, head_dim: 128 }).headDim).toBe(128)
  })

  it('reads llama3 and linear RoPE scaling', () => {
    const llama3 = modelConfigFromHf({
      ...llamaConfig,
      rope_theta: 500000,
      rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 }
    })
    expect(llama3.ropeScaling).toEqual({ type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalContextLength: 8192 })
    expect(modelConfigFromHf({ ...llamaConfig, rope_scaling: { type: 'linear', factor: 2 } }).ropeScaling).toEqual({ type: 'linear', factor: 2 })
    expect(modelConfigFromHf({ ...llamaConfig, rope_scaling: null }).ropeScaling).toBeUndefined()
  })

  it('rejects unsupported and malformed configs with one-line errors', () => {
    expect(() => modelConfigFromHf({ ...llamaConfig, architectures: ['GPT2LMHeadModel'] })).toThrow('unsupported architecture GPT2LMHeadModel')
    expect(() => modelConfigFromHf({ ...llamaConfig, rope_scaling: { rope_type: 'yarn', factor: 4 } })).toThrow('unsupported rope_scaling type "yarn"')
    expect(() => modelConfigFromHf({ ...llamaConfig, rope_scaling: { rope_type: 'llama3', factor: 8 } })).toThrow('bad config.json: missing low_freq_factor')
    expect(() => modelConfigFromHf({ ...llamaConfig, hidden_size: '2048' })).toThrow('bad config.json: hidden_size is "2048", expected a positive integer')
    expect(() => modelConfigFromHf({ ...llamaConfig, num_key_value_heads: 5 })).toThrow('not a multiple of num_key_value_heads 5')
  })
})

describe('generationDefaultsFromHf', () => {
  it('maps sampling keys and ignores the rest', () => {
    expect(generationDefaultsFromHf({ temperature: 0.6, top_k: 40, top_p: 0.9, repetition_penalty: 1.1, eos_token_id: [1, 2], do_sample: true }))
      .toEqual({ temperature: 0.6, topK: 40, topP: 0.9, repetitionPenalty: 1.1 })
    expect(generationDefaultsFromHf({})).toEqual({})
  })
})
