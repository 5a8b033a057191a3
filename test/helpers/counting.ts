// A counting view of a real backend, for tests that bound what a piece of the engine launches or
// transfers: every method call by name (kernel launches, allocations), each device→host read (download
// and downloadAsync, with shape, dtype and which of the two) and each upload's element count. Tensors
// made on it live in the real backend's buffers and run its kernels. downloadAsync is always offered,
// as a device backend's would be, so Tensor.data() shows up as an async read.

import type { Backend, View } from '../../src/backends/backend.js';
import type { DType, HostArray } from '../../src/backends/dtype.js';

export interface Transfer {
  shape: readonly number[];
  dtype: DType;
  /** download (sync) or downloadAsync. */
  async: boolean;
}

export interface Counting {
  backend: Backend;
  /** Calls per method name since the last reset. */
  calls: Map<string, number>;
  count(name: string): number;
  /** Every call except memory bookkeeping (alloc, free, memory, …): what a device would launch or transfer. */
  launches(): number;
  /** Device→host reads (download and downloadAsync), in order. */
  reads: Transfer[];
  /** Host→device uploads: the element count of each. */
  uploads: number[];
  reset(): void;
}

const BOOKKEEPING = new Set(['alloc', 'free', 'memory', 'getThreads', 'setThreads', 'emptyCache']);

/** `real` seen through a proxy that counts each method call; tensors must be created on the proxy. */
export function countingBackend(real: Backend): Counting {
  const calls = new Map<string, number>();
  const reads: Transfer[] = [];
  const uploads: number[] = [];
  const note = (key: string) => calls.set(key, (calls.get(key) ?? 0) + 1);
  const downloadAsync = (v: View): Promise<HostArray> => {
    note('downloadAsync');
    reads.push({ shape: v.shape, dtype: v.dtype, async: true });
    return real.downloadAsync ? real.downloadAsync(v) : Promise.resolve(real.download(v));
  };
  const backend = new Proxy(real, {
    get(target, key, receiver) {
      if (key === 'downloadAsync') return downloadAsync;
      const v: unknown = Reflect.get(target, key, receiver);
      if (typeof v !== 'function' || typeof key !== 'string') return v;
      return (...args: unknown[]) => {
        note(key);
        if (key === 'download') {
          const view = args[0] as View;
          reads.push({ shape: view.shape, dtype: view.dtype, async: false });
        } else if (key === 'upload') uploads.push((args[3] as HostArray).length);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    backend,
    calls,
    count: (name) => calls.get(name) ?? 0,
    launches: () => [...calls].reduce((n, [k, c]) => (BOOKKEEPING.has(k) ? n : n + c), 0),
    reads,
    uploads,
    reset() {
      calls.clear();
      reads.length = 0;
      uploads.length = 0;
    },
  };
}
