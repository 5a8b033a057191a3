// The conformance suite on the cuda backend against the js reference, at the suite's own tolerances
// (those of the f32 native backend): f32 GEMMs compute in f32 (CUBLAS_COMPUTE_32F), so no kernel needs
// a wider one. Where there is no GPU, driver or built addon the suite is one skipped test naming the
// reason; VERA_REQUIRE_CUDA=1 (the GPU host's `npm run test:cuda`) turns that into a failure.

import { loadCudaBackend } from '../../src/backends/cuda/index.js';
import { conformance } from './conformance/index.js';

conformance('cuda', { make: () => loadCudaBackend(), required: process.env['VERA_REQUIRE_CUDA'] === '1' });
