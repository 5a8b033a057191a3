// The demo's VeRA run (vera demo --methods vera, seed 0, 4 epochs) trained on the cuda backend reaches
// the CPU's validation accuracy (within 1 point in f32; at most 1 point below in bf16 mixed precision). The CPU numbers come
// from scripts/demo-reference.mjs on the native backend (test/cuda/demo-cpu.json), the bf16 one with
// the cuda backend's activation dtype (bf16 activations: the native backend's VERA_ACTIVATIONS=bf16
// reference mode); the two backends sum in other orders, so the runs are not bit-equal, only equally
// good. Skipped without a GPU.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runDemo } from '../../src/cli/demo.js';
import { cudaOrSkip } from '../helpers/cuda.js';

const { backend, skip } = cudaOrSkip();
const REF = fileURLToPath(new URL('../../../test/cuda/demo-cpu.json', import.meta.url));

for (const dtype of ['f32', 'bf16'] as const) {
  test(`demo VeRA run on cuda (${dtype}): validation accuracy reaches the CPU's (1 point)`, { skip }, async (t) => {
    const key = dtype === 'bf16' && backend?.activationDType === 'bf16' ? 'bf16-activations' : dtype;
    const ref = (JSON.parse(readFileSync(REF, 'utf8')) as { accuracy: Record<string, number> }).accuracy[key]!;
    const out = mkdtempSync(join(tmpdir(), 'vera-cuda-demo-'));
    try {
      const [row] = await runDemo({ methods: ['vera'], epochs: 4, seed: 0, out, backend: 'cuda', dtype });
      t.diagnostic(`cuda ${dtype}: ${(row!.accuracy * 100).toFixed(1)}% (CPU ${(ref * 100).toFixed(1)}%)`);
      // f32: the same arithmetic in another summation order, within 1 point either way. bf16: cuda
      // must reach the CPU's bf16-activation run (at most 1 point below it); there order differences
      // flip bf16 roundings, so the runs spread like bf16 against f32 does (SD 1.8 points over seeds on
      // the CPU) and a better cuda run is no defect. A wrong kernel shows below: a bf16 GEMM
      // accumulating into bf16 in place gave 72.0% (2026-12-07), the fixed one 75.3% (CPU 74.3%).
      const diff = row!.accuracy - ref;
      assert.ok(
        dtype === 'f32' ? Math.abs(diff) <= 0.01 + 1e-9 : diff >= -0.01 - 1e-9,
        `cuda ${row!.accuracy} vs CPU ${ref}`,
      );
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
}
