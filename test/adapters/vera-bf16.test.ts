// VeRA over a bf16 base: the forward multiplies by bf16 copies of the shared projections, so every GEMM
// of the adapted model computes in bf16 (as torch.autocast casts A and B), while the f32 projections stay
// the masters that merging and saving read; the copies are made once and refreshed when dropped.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { PeftModel } from '../../src/adapters/index.js';
import { bf16Projections, dropBf16Projections } from '../../src/adapters/vera/layer.js';
import { noGrad } from '../../src/autograd/graph.js';
import type { View } from '../../src/backends/backend.js';
import { JsBackend } from '../../src/backends/js/index.js';
import { loadModel } from '../../src/models/auto.js';
import type { ModelInputs } from '../../src/models/pretrained.js';
import * as ops from '../../src/ops/index.js';
import { tensor } from '../../src/tensor/creation.js';
import { bf16ToF32, f32ToBf16 } from '../../src/backends/dtype.js';
import { scope } from '../../src/tensor/scope.js';
import { caseDir, refInputs, refsOf } from '../models/fixtures.js';

const ADAPTERS = fileURLToPath(new URL('../../../test/parity/fixtures/adapters/', import.meta.url));

/** A js backend recording the operand dtypes of every GEMM. */
function gemmDTypes(): { backend: JsBackend; seen: string[] } {
  const backend = new JsBackend();
  const seen: string[] = [];
  const orig = backend.matmul.bind(backend);
  backend.matmul = (out: View, a: View, b: View, acc: boolean) => {
    seen.push(`${a.dtype}·${b.dtype}`);
    orig(out, a, b, acc);
  };
  return { backend, seen };
}

describe('VeRA over a bf16 base', () => {
  for (const dtype of ['bf16', 'f32'] as const) {
    test(`every GEMM of the adapted forward ${dtype === 'bf16' ? 'has a bf16 operand' : 'is f32'} (base ${dtype})`, () => {
      const { backend, seen } = gemmDTypes();
      const peft = PeftModel.fromPretrained(
        loadModel(caseDir('llama-lm'), { backend, dtype }),
        join(ADAPTERS, 'llama-vera-seed-only'),
      );
      try {
        const inputs = refInputs(refsOf('llama-lm'), backend);
        noGrad(() => scope(() => peft.forward(inputs as ModelInputs as never)));
        assert.ok(seen.length > 10, `${seen.length} GEMMs`);
        const f32 = seen.filter((s) => s === 'f32·f32').length;
        if (dtype === 'bf16') assert.equal(f32, 0, `f32 GEMMs over a bf16 base: ${seen.join(', ')}`);
        else assert.equal(f32, seen.length);
        // The masters stay f32 (merging and saving read them).
        const p = peft.projections()!;
        assert.equal(p.A.dtype, 'f32');
        assert.equal(p.B.dtype, 'f32');
      } finally {
        peft.dispose();
      }
    });
  }

  test('bf16Projections: rounded copies, made once, made again from new values after dropBf16Projections', () => {
    const backend = new JsBackend();
    scope(() => {
      const values = Float32Array.from({ length: 12 }, (_, i) => 0.1 * i + 1e-3);
      const p = { A: tensor(values, { shape: [3, 4], backend }), B: tensor(values, { shape: [4, 3], backend }) };
      const c = bf16Projections(p);
      assert.equal(c.A.dtype, 'bf16');
      assert.deepEqual(
        Array.from(ops.cast(c.A, 'f32').toArray() as Float32Array),
        Array.from(values, (v) => bf16ToF32(f32ToBf16(v))),
      );
      assert.equal(bf16Projections(p), c, 'kept and reused');
      p.A.backend.fill(p.A.view('test'), 2);
      assert.notEqual(bf16ToF32((c.A.toArray() as Uint16Array)[0]!), 2, 'a copy does not follow its master by itself');
      dropBf16Projections(p);
      assert.ok(c.A.disposed && c.B.disposed);
      const fresh = bf16Projections(p);
      assert.deepEqual(Array.from(ops.cast(fresh.A, 'f32').toArray() as Float32Array), new Array(12).fill(2));
      dropBf16Projections(p);
    });
  });
});
