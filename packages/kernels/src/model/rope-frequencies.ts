import type { ModelConfig } from '../types.js'

/**
 * Angle per position for each rotated pair j of a head (headDim / 2 values), with the model's RoPE scaling:
 * linear divides positions by `factor`; llama3 rescales low frequencies as in Hugging Face's
 * `_compute_llama3_parameters`. `freqFactors` (a GGUF `rope_freqs.weight`) divides the frequencies instead, as
 * llama.cpp does for Llama 3 files.
 */
export function ropeInverseFrequencies (config: ModelConfig, freqFactors?: Float32Array): Float64Array {
  const half = config.headDim / 2
  const inv = new Float64Array(half)
  for (let j = 0; j < half; j++) inv[j] = Math.pow(config.ropeTheta, -(2 * j) / config.headDim)
  if (freqFactors !== undefined) {
    if (freqFactors.length !== half) throw new Error(`rope_freqs has ${freqFactors.length} values, expected ${half}`)
    for (let j = 0; j < half; j++) inv[j] /= freqFactors[j]
    return inv
  }
  const scaling = config.ropeScaling
  if (scaling?.type === 'linear') {
    for (let j = 0; j < half; j++) inv[j] /= scaling.factor
  } else if (scaling?.type === 'llama3') {
    const lowFreqWavelen = scaling.originalContextLength / scaling.lowFreqFactor
    const highFreqWavelen = scaling.originalContextLength / scaling.highFreqFactor
    for (let j = 0; j < half; j++) {
      const wavelen = 2 * Math.PI / inv[j]
      if (wavelen > lowFreqWavelen) {
        inv[j] /= scaling.factor
      } else if (wavelen >= highFreqWavelen) {
        const smooth = (scaling.originalContextLength / wavelen - scaling.lowFreqFactor) /
          (scaling.highFreqFactor - scaling.lowFreqFactor)
        inv[j] = (1 - smooth) * inv[j] / scaling.factor + smooth * inv[j]
      }
    }
  }
  return inv
}
