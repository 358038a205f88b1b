/**
 * The comparison helpers of the backend conformance suites (wasm/conformance.test.ts, webgpu/*.test.ts), in the
 * style of llama.cpp's test-backend-ops: normalized mean squared error against the CPU reference, and seeded inputs.
 */

/** sum of squared errors over the reference's sum of squares; Infinity for a length mismatch or a non-finite error */
export function nmse (out: Float32Array, ref: Float32Array): number {
  let err = 0
  let norm = 0
  for (let i = 0; i < ref.length; i++) {
    const d = out[i] - ref[i]
    err += d * d
    norm += ref[i] * ref[i]
  }
  if (out.length !== ref.length || !Number.isFinite(err)) return Infinity
  return norm === 0 ? err : err / norm
}

/** `n` values uniform in [-scale, scale) from mulberry32 seeded with `seed` */
export function randomArray (n: number, seed: number, scale = 1): Float32Array {
  let a = seed >>> 0
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    out[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * scale
  }
  return out
}
