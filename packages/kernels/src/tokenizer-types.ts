import type { TokenizerSpecials } from './types.js'

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | string
  content: string
}

/** Text <-> token ids, built from a GGUF vocabulary or a Hugging Face tokenizer.json. */
export interface Tokenizer {
  vocabSize: number
  specials: TokenizerSpecials
  /**
   * Token ids of `text`. `addSpecial` (default true) adds BOS/EOS as the model's files ask (add_bos_token ...);
   * `parseSpecial` (default false) lets control-token text such as "<|eot_id|>" in `text` map to its id.
   */
  encode: (text: string, options?: { addSpecial?: boolean, parseSpecial?: boolean }) => number[]
  /** text of `ids`; `skipSpecial` (default true) leaves out control tokens such as BOS/EOS */
  decode: (ids: number[], options?: { skipSpecial?: boolean }) => string
  /** the model's chat template rendered over `messages` (throws if the model has none) */
  applyChatTemplate: (messages: ChatMessage[], options?: { addGenerationPrompt?: boolean }) => string
}
