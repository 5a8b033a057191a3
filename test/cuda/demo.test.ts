// The demo's VeRA run (vera demo --methods vera, seed 0, 4 epochs) trained on the cuda backend reaches
// the CPU's validation accuracy within 1 point, in f32 and in bf16 mixed precision. The CPU numbers come
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
  test(`demo VeRA run on cuda (${dtype}): validation accuracy within 1 point of the CPU's`, { skip }, async (t) => {
    const key = dtype === 'bf16' && backend?.activationDType === 'bf16' ? 'bf16-activations' : dtype;
    const ref = (JSON.parse(readFileSync(REF, 'utf8')) as { accuracy: Record<string, number> }).accuracy[key]!;
    const out = mkdtempSync(join(tmpdir(), 'vera-cuda-demo-'));
    try {
      const [row] = await runDemo({ methods: ['vera'], epochs: 4, seed: 0, out, backend: 'cuda', dtype });
      t.diagnostic(`cuda ${dtype}: ${(row!.accuracy * 100).toFixed(1)}% (CPU ${(ref * 100).toFixed(1)}%)`);
      assert.ok(Math.abs(row!.accuracy - ref) <= 0.01, `cuda ${row!.accuracy} vs CPU ${ref}`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
}
