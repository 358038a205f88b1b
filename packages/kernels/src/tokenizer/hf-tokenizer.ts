/**
 * A Hugging Face tokenizer.json (through @huggingface/tokenizers) behind our Tokenizer interface. BOS/EOS come from
 * tokenizer_config.json (`add_bos_token`, `add_eos_token`), or, where it says nothing, from whether the
 * tokenizer.json post-processor would add them; we always encode without the post-processor and add them
 * ourselves, so they are never added twice. `parseSpecial: false` encodes with special added tokens removed from
 * the splitter (as llama.cpp treats control tokens as plain text); non-special added tokens are still matched.
 */
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers'
import type { TokenizerSpecials } from '../types.js'
import type { ChatMessage, Tokenizer } from '../tokenizer-types.js'
import { renderChatTemplate } from './chat-template.js'

type Json = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

/** a token in tokenizer_config.json is a string or an AddedToken object `{ content }` */
export function tokenContent (token: unknown): string | undefined {
  if (typeof token === 'string') return token
  if (token !== null && typeof token === 'object' && typeof (token as Json).content === 'string') return (token as Json).content
  return undefined
}

/** the chat template of tokenizer_config.json (a string, or a list of named templates: 'default' wins) */
export function chatTemplateFromConfig (tokenizerConfig: Json): string | undefined {
  const t = tokenizerConfig.chat_template
  if (typeof t === 'string') return t
  if (Array.isArray(t)) {
    const named = t.find((x: Json) => x?.name === 'default') ?? t[0]
    return typeof named?.template === 'string' ? named.template : undefined
  }
  return undefined
}

/** the special token ids a TemplateProcessing post-processor puts before/after a single sequence */
function postProcessorSpecials (tokenizerJson: Json): { before: number[], after: number[] } {
  const pp = tokenizerJson.post_processor
  const single: Json[] | undefined = pp?.type === 'TemplateProcessing'
    ? pp.single
    : pp?.type === 'Sequence' ? pp.processors?.find((p: Json) => p.type === 'TemplateProcessing')?.single : undefined
  const before: number[] = []
  const after: number[] = []
  if (single === undefined) return { before, after }
  let seen = false
  for (const item of single) {
    if (item.Sequence !== undefined) { seen = true; continue }
    const name = item.SpecialToken?.id
    const ids: number[] = pp.special_tokens?.[name]?.ids ?? pp.processors?.find((p: Json) => p.type === 'TemplateProcessing')?.special_tokens?.[name]?.ids ?? []
    ;(seen ? after : before).push(...ids)
  }
  return { before, after }
}

/** TokenizerSpecials of a Hugging Face model directory's tokenizer files */
export function specialsFromHfConfig (tokenizerJson: Json, tokenizerConfig: Json = {}, generationConfig: Json = {}): TokenizerSpecials {
  const idOf = (token: unknown): number | undefined => {
    const text = tokenContent(token)
    if (text === undefined) return undefined
    const added = (tokenizerJson.added_tokens as Json[] | undefined)?.find((t) => t.content === text)
    if (added !== undefined) return added.id
    const v = tokenizerJson.model?.vocab
    return v !== undefined && !Array.isArray(v) && typeof v[text] === 'number' ? v[text] : undefined
  }
  const bosTokenId = idOf(tokenizerConfig.bos_token)
  const eosTokenId = idOf(tokenizerConfig.eos_token)
  const genEos = generationConfig.eos_token_id
  const eosTokenIds = [...new Set([
    ...(eosTokenId !== undefined ? [eosTokenId] : []),
    ...(Array.isArray(genEos) ? genEos : typeof genEos === 'number' ? [genEos] : [])
  ])].sort((a, b) => a - b)
  const pp = postProcessorSpecials(tokenizerJson)
  const addBos = typeof tokenizerConfig.add_bos_token === 'boolean'
    ? tokenizerConfig.add_bos_token
    : bosTokenId !== undefined && pp.before.includes(bosTokenId)
  const addEos = typeof tokenizerConfig.add_eos_token === 'boolean'
    ? tokenizerConfig.add_eos_token
    : eosTokenId !== undefined && pp.after.includes(eosTokenId)
  return {
    bosTokenId,
    eosTokenId,
    eosTokenIds,
    padTokenId: idOf(tokenizerConfig.pad_token),
    addBos,
    addEos,
    chatTemplate: chatTemplateFromConfig(tokenizerConfig)
  }
}

/** Tokenizer over a parsed tokenizer.json and its tokenizer_config.json / generation_config.json. */
export class HfJsonTokenizer implements Tokenizer {
  readonly vocabSize: number
  readonly specials: TokenizerSpecials
  private full?: HfTokenizer
  private plain?: HfTokenizer
  private readonly idToText = new Map<number, string>()

  constructor (private readonly tokenizerJson: Json, private readonly tokenizerConfig: Json = {}, generationConfig: Json = {}) {
    this.specials = specialsFromHfConfig(tokenizerJson, tokenizerConfig, generationConfig)
    const vocab = tokenizerJson.model?.vocab
    let size = 0
    if (Array.isArray(vocab)) size = vocab.length // Unigram: [piece, score][]
    else if (vocab !== undefined) for (const id of Object.values(vocab) as number[]) size = Math.max(size, id + 1)
    for (const t of (tokenizerJson.added_tokens ?? []) as Json[]) {
      size = Math.max(size, t.id + 1)
      this.idToText.set(t.id, t.content)
    }
    this.vocabSize = size
  }

  /** all added tokens: special text in the input maps to its id */
  private fullTokenizer (): HfTokenizer {
    this.full ??= new HfTokenizer(this.tokenizerJson, this.tokenizerConfig)
    return this.full
  }

  /** special added tokens are plain text */
  private plainTokenizer (): HfTokenizer {
    if (this.plain === undefined) {
      const added = ((this.tokenizerJson.added_tokens ?? []) as Json[]).filter((t) => t.special !== true)
      this.plain = new HfTokenizer({ ...this.tokenizerJson, added_tokens: added }, this.tokenizerConfig)
    }
    return this.plain
  }

  encode (text: string, options: { addSpecial?: boolean, parseSpecial?: boolean } = {}): number[] {
    const tok = (options.parseSpecial ?? false) ? this.fullTokenizer() : this.plainTokenizer()
    const ids = text === '' ? [] : tok.encode(text, { add_special_tokens: false }).ids
    if (options.addSpecial ?? true) {
      if (this.specials.addBos && this.specials.bosTokenId !== undefined) ids.unshift(this.specials.bosTokenId)
      if (this.specials.addEos && this.specials.eosTokenId !== undefined) ids.push(this.specials.eosTokenId)
    }
    return ids
  }

  decode (ids: number[], options: { skipSpecial?: boolean } = {}): string {
    if (ids.length === 0) return ''
    return this.fullTokenizer().decode(ids, { skip_special_tokens: options.skipSpecial ?? true })
  }

  applyChatTemplate (messages: ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string {
    const text = (id: number | undefined): string => id === undefined ? '' : (this.idToText.get(id) ?? this.fullTokenizer().id_to_token(id) ?? '')
    return renderChatTemplate(this.specials.chatTemplate, messages, {
      addGenerationPrompt: options.addGenerationPrompt,
      bosToken: tokenContent(this.tokenizerConfig.bos_token) ?? text(this.specials.bosTokenId),
      eosToken: tokenContent(this.tokenizerConfig.eos_token) ?? text(this.specials.eosTokenId)
    })
  }
}
