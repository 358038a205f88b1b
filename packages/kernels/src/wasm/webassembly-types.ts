/**
 * The part of the WebAssembly JS API this backend uses. TypeScript declares it only in lib "dom", which this
 * package does not load (Node types only); these declarations merge with lib.dom's where a consumer has it.
 */
declare global {
  namespace WebAssembly {
    interface Module { readonly __wasmModule?: never }
    // eslint-disable-next-line no-var
    var Module: { new (bytes: Uint8Array): Module }
    interface MemoryDescriptor { initial: number, maximum?: number, shared?: boolean }
    interface Memory { readonly buffer: ArrayBuffer | SharedArrayBuffer, grow: (delta: number) => number }
    // eslint-disable-next-line no-var
    var Memory: { new (descriptor: MemoryDescriptor): Memory }
    interface Instance { readonly exports: Record<string, unknown> }
    // eslint-disable-next-line no-var
    var Instance: { new (module: Module, imports?: Record<string, Record<string, unknown>>): Instance }
    function validate (bytes: Uint8Array): boolean
    function compile (bytes: Uint8Array): Promise<Module>
    function instantiate (module: Module, imports?: Record<string, Record<string, unknown>>): Promise<Instance>
  }
}

export {}
