// The composite fallbacks on the native backend's primitives (f32), fused kernels hidden, against the
// js fused kernels, at the suite's f32 tolerances except where a composite rounds more often than a
// fused kernel: dropout multiplies by 1/(1 − p) rounded to f32 (the fused kernel rounds once), and
// AdamW rounds every step to f32 as torch's f32 arithmetic does, where the js kernel keeps each
// update's intermediates in f64 (m's error is then half an ulp of the O(1) gradient).

import { PRIMITIVE_KERNELS } from '../../src/backends/backend.js';
import { loadNativeBackend } from '../../src/backends/native/index.js';
import { withoutFused } from '../../src/ops/kernels.js';
import { nativeRequired } from '../helpers/backends.js';
import { conformance } from './conformance/index.js';

conformance(
  'native composites',
  { make: () => withoutFused(loadNativeBackend()), required: nativeRequired() },
  {
    skip: [{ kernels: [...PRIMITIVE_KERNELS, 'memory'], reason: 'native primitives: see conformance-native' }],
    tolerances: {
      dropout: { rtol: 2.5e-7, atol: 0 }, // two f32 ulps
      adamw: { rtol: 1e-6, atol: 1e-7 },
    },
  },
);
