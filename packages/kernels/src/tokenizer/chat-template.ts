import { Template } from '@huggingface/jinja'
import type { ChatMessage } from '../tokenizer-types.js'
import { MissingChatTemplateError } from './errors.js'

const compiled = new Map<string, Template>()

export interface ChatTemplateVariables {
  addGenerationPrompt?: boolean
  bosToken?: string
  eosToken?: string
}

/**
 * Render a Hugging Face style (Jinja) chat template over `messages`, with the variables templates expect:
 * `messages`, `add_generation_prompt`, `bos_token`, `eos_token`.
 */
export function renderChatTemplate (template: string | undefined, messages: ChatMessage[], variables: ChatTemplateVariables = {}): string {
  if (template === undefined || template === '') {
    throw new MissingChatTemplateError('this model declares no chat template (tokenizer.chat_template / tokenizer_config.json chat_template)')
  }
  let t = compiled.get(template)
  if (t === undefined) {
    t = new Template(template)
    compiled.set(template, t)
  }
  return t.render({
    messages,
    add_generation_prompt: variables.addGenerationPrompt ?? false,
    bos_token: variables.bosToken ?? '',
    eos_token: variables.eosToken ?? ''
  })
}
