// loadModel(dir, { dtype: 'bf16' }): Linear and Embedding weights stay bf16 (tied lm_head included),
// norms, biases and classification heads f32, and GEMMs with those weights compute in bf16 (activations
// rounded to bf16, f32 accumulation, as torch.autocast): native and js agree on that arithmetic to bf16
// resolution, the logits stay within BF16_TOL of the f32 load's (and measurably differ from them:
// the rounding happens), greedy generation with the KV cache matches, the parameters take about half the
// memory, and bf16 weights stay frozen.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { noGrad } from '../../src/autograd/graph.js';
import type { Backend } from '../../src/backends/backend.js';
import { getBackend, nativeAvailable } from '../../src/backends/registry.js';
import { generate } from '../../src/generate/generate.js';
import { loadModel } from '../../src/models/auto.js';
import { parameterBytes } from '../../src/models/storage.js';
import { Embedding, Linear } from '../../src/nn/layers.js';
import * as ops from '../../src/ops/index.js';
import { tensor } from '../../src/tensor/creation.js';
import { f32ToBf16 } from '../../src/backends/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { JsBackend } from '../../src/backends/js/index.js';
import { caseDir, editedCopy, refInputs, refsOf, tempDir } from './fixtures.js';

const backends: [string, Backend][] = [['js', getBackend('js')]];
if (nativeAvailable()) backends.unshift(['native', getBackend('native')]);
// The cuda backend's arithmetic on the CPU: bf16 activations between the GEMMs (and its KV cache bf16).
backends.push(['js, bf16 activations', new JsBackend({ activationDType: 'bf16' })]);

const FIXTURE = 'llama-tied-bf16';
/**
 * bf16 against f32 logits, relative to the largest logit. Rounding each GEMM input to bf16 moves it by
 * up to 2^-9 relative; through a few layers of these tiny fixtures that stays well under 2e-2.
 */
const BF16_TOL = 2e-2;

function logits(dir: string, name: string, backend: Backend, dtype: 'f32' | 'bf16'): Float32Array {
  const model = loadModel(dir, { backend, dtype });
  try {
    return noGrad(() => model.forward(refInputs(refsOf(name), backend)).toArray() as Float32Array);
  } finally {
    model.dispose();
  }
}

/** max |a − b| / max |b|: the tolerance is relative to the logits' scale. */
function relError(a: Float32Array, b: Float32Array): number {
  let [err, scale] = [0, 0];
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return err / scale;
}

describe("loadModel with dtype 'bf16'", () => {
  // An f32 difference of one ulp in a GEMM input may round it to the neighbouring bf16 value (2^-8 apart),
  // so native and js agree to bf16 resolution (the kernels themselves are exact: bf16-matmul.test.ts).
  test(`${FIXTURE}: native and js compute the same bf16 logits (2e-3 relative)`, { skip: backends.length < 2 }, () => {
    const [nat, js] = backends.map(([, b]) => logits(caseDir(FIXTURE), FIXTURE, b, 'bf16'));
    const err = relError(nat!, js!);
    assert.ok(err <= 2e-3, `native bf16 logits differ from js bf16 by ${err.toExponential(3)} (relative)`);
  });

  for (const [bname, backend] of backends) {
    test(`${FIXTURE} (${bname}): logits within ${BF16_TOL} of dtype 'f32' (relative), and computed in bf16`, () => {
      const f32 = logits(caseDir(FIXTURE), FIXTURE, backend, 'f32');
      const bf16 = logits(caseDir(FIXTURE), FIXTURE, backend, 'bf16');
      const err = relError(bf16, f32);
      console.log(`${FIXTURE} (${bname}): bf16 vs f32 logits ${err.toExponential(3)} relative`);
      assert.ok(err <= BF16_TOL, `bf16 logits differ from f32 by ${err.toExponential(3)} (relative)`);
      // The same weights (the fixture is stored in bf16), so any difference is the bf16 GEMM arithmetic.
      assert.ok(err > 1e-5, `bf16 logits equal f32's (${err.toExponential(3)}): were the GEMMs computed in f32?`);
    });

    test(`${FIXTURE} (${bname}): greedy generation with the KV cache matches f32 and transformers`, () => {
      const refs = refsOf(FIXTURE);
      const out: number[][] = [];
      for (const dtype of ['f32', 'bf16'] as const) {
        const model = loadModel(caseDir(FIXTURE), { backend, dtype });
        out.push(
          generate(model, [refs.greedy_prompt!], { maxNewTokens: refs.greedy_tokens!.length, stopTokenIds: [] })[0]!,
        );
        model.dispose();
      }
      assert.deepEqual(out[1], out[0]);
      assert.deepEqual(out[1], refs.greedy_tokens);
    });
  }

  test('weights are bf16 (tied lm_head shares the bf16 table), norms f32; about half the memory', () => {
    const backend = backends[0]![1];
    const f32 = loadModel(caseDir(FIXTURE), { backend });
    const bf16 = loadModel(caseDir(FIXTURE), { backend, dtype: 'bf16' });
    try {
      const params = new Map(bf16.namedParameters());
      for (const [name, p] of params) {
        const want = /_proj\.weight$|embed_tokens\.weight$|lm_head\.weight$/.test(name) ? 'bf16' : 'f32';
        assert.equal(p.dtype, want, `${name} is ${p.dtype}`);
        assert.equal(p.requiresGrad, false);
      }
      assert.equal(params.get('lm_head.weight'), params.get('model.embed_tokens.weight'), 'tie kept');
      const m = bf16 as unknown as { model: { embed_tokens: Embedding }; lm_head: Linear };
      assert.equal(m.model.embed_tokens.constructor, Embedding, 'a plain Embedding over the bf16 table');
      assert.equal(m.model.embed_tokens.weight.dtype, 'bf16');
      assert.deepEqual(
        bf16.namedParameters().map(([n, p]) => [n, p.shape]),
        f32.namedParameters().map(([n, p]) => [n, p.shape]),
        'same names and shapes',
      );
      const ratio = parameterBytes(bf16) / parameterBytes(f32);
      console.log(
        `${FIXTURE}: parameters ${parameterBytes(f32)} bytes as f32, ${parameterBytes(bf16)} as bf16 (${ratio.toFixed(3)}×)`,
      );
      assert.ok(ratio > 0.49 && ratio < 0.53, `bf16 parameters take ${ratio.toFixed(3)}× the f32 bytes`);
      // Frozen: a bf16 weight cannot be made trainable.
      assert.throws(() => bf16.unfreeze(), /Only float tensors can require grad, got bf16/);
    } finally {
      f32.dispose();
      bf16.dispose();
    }
  });

  test('an F32 checkpoint (GPT-2, Conv1D [in, out] weights) loads rounded to bf16; near f32 on pre-rounded weights', () => {
    const { dir, cleanup } = tempDir();
    after(cleanup);
    const backend = backends[0]![1];
    // The same values rounded to bf16 but stored as F32: the f32 load of it is the bf16 load's reference.
    const rounded = editedCopy('gpt2-lm', dir, backend, {
      tensors: (ts) =>
        new Map(
          [...ts].map(([n, t]): [string, Tensor] => {
            if (!/(c_attn|c_proj|c_fc)\.weight$|wte|wpe|lm_head/.test(n)) return [n, t];
            const half = tensor(Uint16Array.from(t.toArray() as Float32Array, f32ToBf16), {
              dtype: 'bf16',
              shape: t.shape,
              backend,
            });
            const widened = ops.cast(half, 'f32');
            half.dispose();
            t.dispose();
            return [n, widened];
          }),
        ),
    });
    const bf16 = logits(caseDir('gpt2-lm'), 'gpt2-lm', backend, 'bf16');
    const ref = logits(rounded, 'gpt2-lm', backend, 'f32');
    const err = relError(bf16, ref);
    assert.ok(err <= BF16_TOL, `gpt2 bf16 logits differ from f32 on rounded weights by ${err.toExponential(3)}`);
    const model = loadModel(caseDir('gpt2-lm'), { backend, dtype: 'bf16' });
    const p = new Map(model.namedParameters());
    assert.equal(p.get('transformer.h.0.mlp.c_fc.weight')!.dtype, 'bf16');
    assert.equal(p.get('transformer.wpe.weight')!.dtype, 'bf16');
    assert.equal(p.get('transformer.h.0.mlp.c_fc.bias')!.dtype, 'f32');
    assert.equal(p.get('transformer.ln_f.weight')!.dtype, 'f32');
    model.dispose();
  });

  test('classification heads stay f32; out-of-range ids and other dtypes are errors', () => {
    const backend = backends[0]![1];
    const model = loadModel(caseDir('llama-seqcls'), { backend, dtype: 'bf16' });
    const p = new Map(model.namedParameters());
    assert.equal(p.get('score.weight')!.dtype, 'f32');
    assert.equal(p.get('model.layers.0.mlp.up_proj.weight')!.dtype, 'bf16');
    const ids = tensor(Int32Array.from([1, 100000]), { dtype: 'i32', shape: [1, 2], backend });
    assert.throws(
      () => model.forward({ inputIds: ids }),
      /embedding\] [Ii]d 100000 at position 1 is out of range for a table of \d+ rows/,
    );
    model.dispose();
    assert.throws(
      () => loadModel(caseDir(FIXTURE), { backend, dtype: 'f16' as 'f32' }),
      /\[loadModel\] dtype "f16" is not supported: parameters load as 'f32' or 'bf16'/,
    );
  });
});
