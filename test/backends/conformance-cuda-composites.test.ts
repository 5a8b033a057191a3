// The composite fallbacks on the cuda backend's primitives, fused kernels hidden, against the js fused
// kernels, with the tolerances of the native composites (the composites round as often on either).

import { PRIMITIVE_KERNELS } from '../../src/backends/backend.js';
import { loadCudaBackend } from '../../src/backends/cuda/index.js';
import { withoutFused } from '../../src/ops/kernels.js';
import { conformance } from './conformance/index.js';

conformance(
  'cuda composites',
  { make: () => withoutFused(loadCudaBackend()), required: process.env['VERA_REQUIRE_CUDA'] === '1' },
  {
    skip: [{ kernels: [...PRIMITIVE_KERNELS, 'memory'], reason: 'cuda primitives: see conformance-cuda' }],
    tolerances: {
      dropout: { rtol: 2.5e-7, atol: 0 },
      adamw: { rtol: 1e-6, atol: 1e-7 },
    },
  },
);
