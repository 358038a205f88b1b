// Child process: calls llama.cpp's own quantizer (llama_model_quantize from the libllama.so shipped in
// @node-llama-cpp/linux-x64) through koffi. Runs in its own process because the call blocks for as long as it takes.
// usage: node quantize-child.mjs <src.gguf> <dst.gguf> <ftype> <pure 0|1> <nthread>
// Prints one JSON line on stdout: {"ok":true} or {"ok":false,"error":...}; llama.cpp logs go to stderr.
import { createRequire } from 'node:module'
import { readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'

const require = createRequire(import.meta.url)
const koffi = require('koffi')

export function findLibllama() {
  // the package only exports '.', whose entry is dist/index.js
  const pkg = dirname(dirname(require.resolve('@node-llama-cpp/linux-x64')))
  const dir = join(pkg, 'bins', 'linux-x64')
  const lib = readdirSync(dir).find((f) => /^libllama(\.v[\d.]+)?\.so$/.test(f))
  if (!lib) throw new Error(`libllama*.so not found in ${dir}`)
  return join(dir, lib)
}

// Exactly as in include/llama.h of the llama.cpp bundled with node-llama-cpp 3.22.1 (release tag "v0.5.0",
// commit de3ff815ea7d559ee917f063901b8986f038abc6). Enums are int32; sizeof = 64 on x86-64.
const Params = koffi.struct('llama_model_quantize_params', {
  nthread: 'int32',
  ftype: 'int32', // enum llama_ftype
  output_tensor_type: 'int32', // enum ggml_type
  token_embedding_type: 'int32', // enum ggml_type
  allow_requantize: 'bool',
  quantize_output_tensor: 'bool',
  only_copy: 'bool',
  pure: 'bool',
  keep_split: 'bool',
  dry_run: 'bool',
  imatrix: 'void *',
  kv_overrides: 'void *',
  tt_overrides: 'void *',
  prune_layers: 'void *',
  max_buf_size: 'size_t'
})

function main() {
  const [src, dst, ftypeStr, pureStr, nthreadStr] = process.argv.slice(2)
  const lib = koffi.load(findLibllama())
  const backendInit = lib.func('void llama_backend_init(void)')
  const defaults = lib.func('llama_model_quantize_params llama_model_quantize_default_params(void)')
  const quantize = lib.func(
    'uint32 llama_model_quantize(const char *fname_inp, const char *fname_out, const llama_model_quantize_params *params)'
  )
  if (koffi.sizeof(Params) !== 64) throw new Error(`unexpected sizeof(llama_model_quantize_params) ${koffi.sizeof(Params)}`)
  backendInit()
  const p = defaults()
  // sanity check of the struct layout against the defaults in src/llama-quant.cpp
  if (p.ftype !== 7 || p.quantize_output_tensor !== true || p.pure !== false || p.dry_run !== false) {
    throw new Error(`llama_model_quantize_default_params layout mismatch: ${JSON.stringify(p, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`)
  }
  p.ftype = Number(ftypeStr)
  p.pure = pureStr === '1'
  p.nthread = Number(nthreadStr)
  const rc = quantize(src, dst, p)
  if (rc !== 0) throw new Error(`llama_model_quantize returned ${rc}`)
  process.stdout.write(JSON.stringify({ ok: true }) + '\n')
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop())) {
  try {
    main()
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, error: String(e?.stack ?? e) }) + '\n')
    process.exitCode = 1
  }
}
