#!/usr/bin/env node
// Convert the default model's Hugging Face directory to GGUF with the project's own writer (@swarm/kernels'
// writeGgufModel: llama.cpp metadata, Q/K rows permuted for adjacent-pair RoPE, tokenizer.ggml.* from
// tokenizer.json as a 'gpt2' byte-level BPE with pre-tokenizer 'gpt-2').
//
//   npx -y pnpm@10.34.8 exec tsc -b
//   node scripts/train-default-model/to-gguf.mjs [--dir packages/kernels/default-model] [--dtype f16] [--out FILE]
import { readFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const { openHfModel, dequantize, ggufVocabFromTokenizerJson, writeGgufModel } =
  await import(pathToFileURL(join(root, 'packages/kernels/dist/index.js')).href)

const args = process.argv.slice(2)
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : dflt
}
const dir = resolve(opt('dir', join(root, 'packages/kernels/default-model')))
const dtype = opt('dtype', 'f16')
const out = resolve(opt('out', join(dir, `kjv-llama-4m-${dtype}.gguf`)))

const source = await openHfModel(dir)
try {
  const tokenizerJson = JSON.parse(await readFile(join(dir, 'tokenizer.json'), 'utf8'))
  const tokenizerConfig = JSON.parse(await readFile(join(dir, 'tokenizer_config.json'), 'utf8'))
  const vocab = ggufVocabFromTokenizerJson(tokenizerJson, tokenizerConfig, 'gpt2', { pre: 'gpt-2' })
  const weights = new Map()
  for (const name of source.tensors.keys()) weights.set(name, dequantize(await source.loadTensor(name)))
  await writeGgufModel(out, { ...source.config, name: 'kjv-llama-4m' }, weights, { dtype, vocab, name: 'kjv-llama-4m', generation: source.generation })
  console.log(`wrote ${out} (${dtype}, ${weights.size} tensors, vocab ${vocab.tokens.length}, pre ${vocab.pre})`)
} finally {
  await source.close()
}
