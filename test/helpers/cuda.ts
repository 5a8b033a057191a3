// The cuda backend for the GPU tests, or the reason it is unavailable (thrown under VERA_REQUIRE_CUDA=1).

import type { Backend } from '../../src/backends/backend.js';
import { getBackend } from '../../src/backends/registry.js';

/** The cuda backend, or the reason it is unavailable (thrown under VERA_REQUIRE_CUDA=1). */
export function cudaOrSkip(): { backend: Backend | null; skip: string | false } {
  try {
    return { backend: getBackend('cuda'), skip: false };
  } catch (e) {
    const why = (e as Error).message;
    if (process.env['VERA_REQUIRE_CUDA'] === '1') throw new Error(`${why} (VERA_REQUIRE_CUDA=1)`, { cause: e });
    return { backend: null, skip: why };
  }
}
