// Every composite fallback checked on the js backend with its fused kernels hidden, in f64, against the
// js fused kernels: the same arithmetic up to float64 rounding, so the tolerances are tight. The
// primitives are skipped: they are the reference's own code.

import { PRIMITIVE_KERNELS } from '../../src/backends/backend.js';
import { JsBackend } from '../../src/backends/js/index.js';
import { withoutFused } from '../../src/ops/kernels.js';
import { conformance } from './conformance/index.js';

conformance(
  'js composites f64',
  { make: () => withoutFused(new JsBackend()) },
  {
    float: 'f64',
    skip: [{ kernels: [...PRIMITIVE_KERNELS, 'memory'], reason: 'the primitives are the js reference itself' }],
    tolerances: { default: { rtol: 1e-12, atol: 1e-13 } },
  },
);
