/** The swarm side of the CLI: --bootstrap / --swarm-key flags and a connected model for one command. */
import { readFile } from 'node:fs/promises'
import { parseSwarmKey } from '@swarm/protocol'
import { Swarm, type ModelOptions } from '../swarm.js'
import type { RemoteModel } from '../remote-model.js'
import { UsageError, type FlagValues } from './args.js'
import type { CommandContext } from './context.js'

export const swarmFlags = {
  bootstrap: { type: 'string', multiple: true },
  'swarm-key': { type: 'string' },
  'no-push': { type: 'boolean' }
} as const

export const swarmFlagsHelp = `  --bootstrap MULTIADDR     run the blocks in the swarm reached through this peer (repeatable)
  --swarm-key FILE          libp2p private network key of the swarm
  --no-push                 no server-to-server push: every span's output goes back through this client
`

/** the inference session options the swarm flags set */
export function sessionFlagsOf (values: FlagValues): { serverToServer: boolean } {
  return { serverToServer: values['no-push'] !== true }
}

export function bootstrapOf (values: FlagValues): string[] {
  return (values.bootstrap as string[] | undefined) ?? []
}

/** `--local` xor `--bootstrap`: which side runs the blocks */
export function targetOf (values: FlagValues, options: { localFlag: boolean }): 'local' | 'swarm' {
  const swarm = bootstrapOf(values).length > 0
  const local = options.localFlag ? values.local === true : !swarm
  if (local && swarm) throw new UsageError('use either --local or --bootstrap, not both')
  if (!local && !swarm) throw new UsageError('say where the model runs: --local (this process) or --bootstrap MULTIADDR (the swarm)')
  return local ? 'local' : 'swarm'
}

export async function connectSwarm (values: FlagValues, ctx: CommandContext): Promise<Swarm> {
  const keyFile = values['swarm-key'] as string | undefined
  const swarmKey = keyFile === undefined ? undefined : parseSwarmKey(await readFile(keyFile))
  const debug = process.env.SWARM_DEBUG === '1'
  return await Swarm.connect({
    bootstrap: bootstrapOf(values),
    swarmKey,
    signal: ctx.signal,
    log: debug ? message => { ctx.stderr(`[swarm] ${message}\n`) } : undefined
  })
}

/**
 * connects, opens the model (its head only, on `head`'s backend and threads: the command's --backend/--threads; the
 * nodes choose their own), runs `fn`, and closes everything
 */
export async function withSwarmModel<T> (values: FlagValues, modelPath: string, ctx: CommandContext, fn: (model: RemoteModel, swarm: Swarm) => Promise<T>,
  head: Pick<ModelOptions, 'backend' | 'threads'> = {}): Promise<T> {
  const swarm = await connectSwarm(values, ctx)
  try {
    const model = await swarm.model(modelPath, { signal: ctx.signal, ...head })
    return await fn(model, swarm)
  } finally {
    await swarm.close()
  }
}
