/** `swarm status`: the swarm as this client sees it: peers, their blocks, state, speed, load, and uncovered blocks. */
import { openModel, weightsManifest } from '@swarm/kernels'
import { computeModelId } from '@swarm/protocol'
import { missingBlocks, formatRanges } from '../routing.js'
import { optionalString, parseFlags, UsageError } from './args.js'
import type { CommandContext } from './context.js'
import { bootstrapOf, connectSwarm, swarmFlags, swarmFlagsHelp } from './swarm-target.js'

export const statusHelp = `Usage: swarm status --bootstrap MULTIADDR [--model PATH] [--json]

Asks every peer this client can find what it serves and prints, per model, the peers (block range, state,
throughput, load, cache tokens left, round trip) and the blocks no peer serves.

Options:
${swarmFlagsHelp}  --model PATH              show only this model (and its uncovered blocks against its real block count)
  --json                    print {models: [{modelId, nBlocks?, peers: [...], missing: [[start, end], ...]}]}
  -h, --help                show this help
`

export async function statusCommand (args: string[], ctx: CommandContext): Promise<void> {
  const values = parseFlags('swarm status', args, { ...swarmFlags, model: { type: 'string' }, json: { type: 'boolean' } })
  if (values.help === true) {
    ctx.stdout(statusHelp)
    return
  }
  if (bootstrapOf(values).length === 0) throw new UsageError('--bootstrap is required')
  const modelPath = optionalString(values, 'model')
  let only: { modelId: string, nBlocks: number } | undefined
  if (modelPath !== undefined) {
    const source = await openModel(modelPath, { signal: ctx.signal })
    try {
      only = { modelId: computeModelId({ config: source.config, manifest: await weightsManifest(source, { signal: ctx.signal }) }), nBlocks: source.config.nLayers }
    } finally {
      await source.close()
    }
  }
  const swarm = await connectSwarm(values, ctx)
  try {
    const peers = await swarm.peers({ signal: ctx.signal, modelId: only?.modelId })
    const byModel = new Map<string, typeof peers>()
    for (const p of peers) {
      if (only !== undefined && p.modelId !== only.modelId) continue
      byModel.set(p.modelId, [...(byModel.get(p.modelId) ?? []), p])
    }
    if (only !== undefined && !byModel.has(only.modelId)) byModel.set(only.modelId, [])
    const models = [...byModel].map(([modelId, list]) => {
      list.sort((a, b) => a.blocks[0] - b.blocks[0] || a.blocks[1] - b.blocks[1])
      const nBlocks = only?.modelId === modelId ? only.nBlocks : Math.max(0, ...list.map(p => p.blocks[1]))
      const online = list.filter(p => p.state === 'online').map(p => ({ peerId: p.peerId, blocks: p.blocks, inferenceThroughput: 0, forwardThroughput: 0, load: 0, cacheTokensLeft: 0, addrs: [] }))
      return {
        modelId,
        nBlocks: only?.modelId === modelId ? nBlocks : undefined,
        peers: list.map(p => ({ peerId: p.peerId, blocks: p.blocks, state: p.state, throughput: p.throughput, load: p.load, cacheTokensLeft: p.cacheTokensLeft, version: p.version, rttMs: p.rttMs })),
        missing: missingBlocks(online, 0, nBlocks)
      }
    })
    if (values.json === true) {
      ctx.stdout(JSON.stringify({ models }) + '\n')
      return
    }
    if (models.length === 0) {
      ctx.stdout('no peer serves any model yet\n')
      return
    }
    for (const m of models) {
      ctx.stdout(`model ${m.modelId}${m.nBlocks !== undefined ? ` (${m.nBlocks} blocks)` : ''}\n`)
      for (const p of m.peers) {
        ctx.stdout(`  ${p.peerId}  blocks [${p.blocks[0]}, ${p.blocks[1]})  ${p.state.padEnd(7)}  ${p.throughput.inference.toFixed(1)} tok/s/block  load ${(p.load * 100).toFixed(0)}%  cache ${p.cacheTokensLeft} tokens  rtt ${p.rttMs.toFixed(1)} ms\n`)
      }
      ctx.stdout(m.missing.length === 0 ? '  every block is served\n' : `  blocks with no server: ${formatRanges(m.missing)}\n`)
    }
  } finally {
    await swarm.close()
  }
}
