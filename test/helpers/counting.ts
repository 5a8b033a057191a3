// A backend that counts host transfers: every method of a real backend, bound to it, with download,
// downloadAsync and upload recorded. Tensors made on it live in the real backend's buffers, so models
// loaded onto it run the real kernels (js or native) while the test sees each read and upload.

import type { Backend, View } from '../../src/backends/backend.js';
import type { DType, HostArray } from '../../src/backends/dtype.js';

export interface Transfer {
  shape: readonly number[];
  dtype: DType;
  /** download (sync) or downloadAsync. */
  async: boolean;
}

export interface CountingBackend {
  backend: Backend;
  /** Device→host reads (download and downloadAsync), in order. */
  reads: Transfer[];
  /** Host→device uploads: the element count of each. */
  uploads: number[];
  reset(): void;
}

export function countingBackend(real: Backend): CountingBackend {
  const reads: Transfer[] = [];
  const uploads: number[] = [];
  const wrapped: Record<string, unknown> = { name: real.name, device: real.device, dtypes: real.dtypes };
  for (let proto: object | null = real; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto))
    for (const key of Object.getOwnPropertyNames(proto)) {
      const value = (real as unknown as Record<string, unknown>)[key];
      if (key !== 'constructor' && typeof value === 'function' && !(key in wrapped))
        wrapped[key] = (value as (...a: unknown[]) => unknown).bind(real);
    }
  wrapped['download'] = (v: View): HostArray => {
    reads.push({ shape: v.shape, dtype: v.dtype, async: false });
    return real.download(v);
  };
  wrapped['downloadAsync'] = (v: View): Promise<HostArray> => {
    reads.push({ shape: v.shape, dtype: v.dtype, async: true });
    return real.downloadAsync ? real.downloadAsync(v) : Promise.resolve(real.download(v));
  };
  wrapped['upload'] = (buf: Parameters<Backend['upload']>[0], dtype: DType, offset: number, data: HostArray) => {
    uploads.push(data.length);
    real.upload(buf, dtype, offset, data);
  };
  return {
    backend: wrapped as unknown as Backend,
    reads,
    uploads,
    reset() {
      reads.length = 0;
      uploads.length = 0;
    },
  };
}
