/** Flag parsing for the CLI: node:util parseArgs in strict mode, with every failure turned into a UsageError. */
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { defaultModelPath } from '@swarm/kernels'

/** A mistake in the command line itself (exit code 2). */
export class UsageError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'UsageError'
  }
}

type Options = NonNullable<ParseArgsConfig['options']>
export type FlagValues = Record<string, string | boolean | string[] | undefined>

/** parses `args` against `options` for the subcommand `command`; unknown flags and positionals are usage errors */
export function parseFlags (command: string, args: string[], options: Options): FlagValues {
  try {
    const { values } = parseArgs({ args: attachNegativeNumbers(args, options), options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false, allowNegative: true })
    return values as FlagValues
  } catch (error) {
    const code = (error as { code?: string }).code
    const message = (error as Error).message
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const flag = /'([^']+)'/.exec(message)?.[1] ?? message
      throw new UsageError(`unknown option ${flag} for '${command}' (see ${command} --help)`, { cause: error })
    }
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      const arg = /'([^']+)'/.exec(message)?.[1] ?? message
      throw new UsageError(`unexpected argument '${arg}' for '${command}' (see ${command} --help)`, { cause: error })
    }
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      throw new UsageError(`${message.replace(/^Option/, 'option')} (see ${command} --help)`, { cause: error })
    }
    throw error
  }
}

/**
 * parseArgs refuses `--temperature -1` (a value that looks like a flag); joining it as `--temperature=-1` lets the
 * range checks give the real message.
 */
function attachNegativeNumbers (args: string[], options: Options): string[] {
  const out: string[] = []
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith('--') ? args[i].slice(2) : undefined
    const next = args[i + 1]
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`${args[i]}=${next}`)
      i++
    } else {
      out.push(args[i])
    }
  }
  return out
}

export function requireString (values: FlagValues, name: string): string {
  const value = values[name]
  if (typeof value !== 'string' || value.length === 0) throw new UsageError(`--${name} is required`)
  return value
}

/** --model, else the embedded default model (its GGUF file) */
export function modelPathOf (values: FlagValues): string {
  const value = values.model
  if (value === undefined) return defaultModelPath()
  if (typeof value !== 'string' || value.length === 0) throw new UsageError('--model needs a path')
  return value
}

export function optionalString (values: FlagValues, name: string): string | undefined {
  const value = values[name]
  return typeof value === 'string' ? value : undefined
}

function parseNumber (name: string, raw: string): number {
  const value = raw.trim() === '' ? NaN : Number(raw)
  if (!Number.isFinite(value)) throw new UsageError(`--${name} must be a number, got '${raw}'`)
  return value
}

/** a finite number flag within [min, max] (either bound optional), or undefined when absent */
export function numberFlag (values: FlagValues, name: string, range: { min?: number, max?: number, minExclusive?: boolean } = {}): number | undefined {
  const raw = optionalString(values, name)
  if (raw === undefined) return undefined
  const value = parseNumber(name, raw)
  const { min, max, minExclusive = false } = range
  if (min !== undefined && (minExclusive ? value <= min : value < min)) {
    throw new UsageError(`--${name} must be ${minExclusive ? '>' : '>='} ${min}, got ${raw}`)
  }
  if (max !== undefined && value > max) throw new UsageError(`--${name} must be <= ${max}, got ${raw}`)
  return value
}

/** an integer flag >= min, or undefined when absent */
export function integerFlag (values: FlagValues, name: string, min: number): number | undefined {
  const raw = optionalString(values, name)
  if (raw === undefined) return undefined
  const value = parseNumber(name, raw)
  if (!Number.isSafeInteger(value)) throw new UsageError(`--${name} must be an integer, got '${raw}'`)
  if (value < min) throw new UsageError(`--${name} must be >= ${min}, got ${raw}`)
  return value
}

/** one of `choices`, or undefined when absent */
export function choiceFlag<T extends string> (values: FlagValues, name: string, choices: readonly T[]): T | undefined {
  const raw = optionalString(values, name)
  if (raw === undefined) return undefined
  if (!(choices as readonly string[]).includes(raw)) {
    throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got '${raw}'`)
  }
  return raw as T
}

/** a comma-separated list of token ids */
export function tokenListFlag (values: FlagValues, name: string): number[] {
  const raw = requireString(values, name)
  const ids = raw.split(',').map(part => part.trim())
  return ids.map(part => {
    const id = part === '' ? NaN : Number(part)
    if (!Number.isSafeInteger(id) || id < 0) {
      throw new UsageError(`--${name} must be a comma-separated list of token ids (integers >= 0), got '${raw}'`)
    }
    return id
  })
}
