/** The peer identity of a node: a persisted Ed25519 key (libp2p protobuf encoding), created on first use. */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'

export class KeyFileError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'KeyFileError'
  }
}

/** Reads the key in `path`, or creates a new Ed25519 key there (mode 0600) when the file does not exist. */
export async function loadOrCreateKey (path: string): Promise<PrivateKey> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new KeyFileError(`cannot read key file ${path}: ${(err as Error).message}`, { cause: err })
    const key = await generateKeyPair('Ed25519')
    await mkdir(dirname(path), { recursive: true })
    await writeFile(path, privateKeyToProtobuf(key), { mode: 0o600, flag: 'wx' })
    await chmod(path, 0o600)
    return key
  }
  let key: PrivateKey
  try {
    key = privateKeyFromProtobuf(bytes)
  } catch (err) {
    throw new KeyFileError(`key file ${path} is not a libp2p private key`, { cause: err })
  }
  if (key.type !== 'Ed25519') throw new KeyFileError(`key file ${path} holds a ${key.type} key; swarm records need Ed25519`)
  return key
}
