// Errors of the adapter layer. Messages name the adapter, the module or key at fault and, where one
// exists, the likely fix (as PEFT's do).

export class AdapterError extends Error {
  override name = 'AdapterError';
}
