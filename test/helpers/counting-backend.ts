// A backend wrapper that counts calls by method name (kernel launches, downloads, allocations), for
// tests that bound how many launches or device→host reads a piece of the engine makes.

import type { Backend } from '../../src/backends/backend.js';

export interface Counting {
  backend: Backend;
  /** Calls per method name since the last reset. */
  calls: Map<string, number>;
  count(name: string): number;
  /** Every call except memory bookkeeping (alloc, free, memory): what a device would launch or transfer. */
  launches(): number;
  reset(): void;
}

const BOOKKEEPING = new Set(['alloc', 'free', 'memory', 'getThreads', 'setThreads', 'emptyCache']);

/** `inner` seen through a proxy that counts each method call; tensors must be created on the proxy. */
export function countingBackend(inner: Backend): Counting {
  const calls = new Map<string, number>();
  const backend = new Proxy(inner, {
    get(target, key, receiver) {
      const v: unknown = Reflect.get(target, key, receiver);
      if (typeof v !== 'function' || typeof key !== 'string') return v;
      return (...args: unknown[]) => {
        calls.set(key, (calls.get(key) ?? 0) + 1);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    backend,
    calls,
    count: (name) => calls.get(name) ?? 0,
    launches: () => [...calls].reduce((n, [k, c]) => (BOOKKEEPING.has(k) ? n : n + c), 0),
    reset: () => calls.clear(),
  };
}
