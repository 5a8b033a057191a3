// The bf16 mixed-precision policy on the demo's own model and adapter (assets/base-model as a sequence
// classifier, VeRA r = 256 on attn.c_attn and attn.c_proj with its head, as `vera demo` trains it), on
// 32 sentences of the demo's validation split: bf16 costs nothing beyond the rounding torch.autocast
// does too.
// - The frozen base in bf16 moves the hidden states by about bf16's rounding (under 1e-2 relative;
//   2e-3 measured), and keeping the embedding tables in f32 (which autocast never rounds) would remove
//   the smaller part of that: the Linear weights, which autocast rounds as well, carry most of it.
// - The gradients of every trained tensor (λ_b, λ_d, the head) under bf16 point where the f32 ones do
//   (cosine ≥ 0.999) with a norm within 2%, at a point where λ_b ≠ 0 (λ_d gets no gradient at λ_b = 0),
//   and the loss agrees to 1e-3 relative: no biased rounding, no lost λ gradient.
// Per seed, the demo's bf16 accuracy differs from f32's by as much as an f32 run on weights jittered by
// the same relative amount does (docs/architecture.md, dtype policy); that spread is not tested here.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import { noGrad } from '../../src/autograd/graph.js';
import type { Backend } from '../../src/backends/backend.js';
import { getBackend, nativeAvailable } from '../../src/backends/registry.js';
import { writeSentimentData } from '../../src/data/builtin.js';
import { parseDelimited } from '../../src/data/csv.js';
import { rawIds } from '../../src/data/tokens.js';
import { getPeftModel, veraConfig } from '../../src/adapters/index.js';
import { BASE_MODEL } from '../../src/experiments/demo-recipe.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { loadModel } from '../../src/models/auto.js';
import type { GPT2ForSequenceClassification } from '../../src/models/gpt2/model.js';
import { crossEntropy } from '../../src/ops/loss.js';
import { tensor } from '../../src/tensor/creation.js';
import { tempDir } from './fixtures.js';
import { cosine, relErr, spreadLambdaB } from '../helpers/vectors.js';

const backend: Backend = nativeAvailable() ? getBackend('native') : getBackend('js');
const PAD = 4095; // the demo base's eos, which training pads with
const ROWS = 32;

const tmp = tempDir('vera-bf16-policy-');
after(() => tmp.cleanup());

/** ROWS validation sentences of the demo's split (seed 0), padded: ids, mask and labels. */
function batch() {
  const data = writeSentimentData(join(tmp.dir, 'data'), 0);
  const tok = Tokenizer.fromDir(BASE_MODEL);
  const [header, ...records] = parseDelimited(readFileSync(data.validation, 'utf8'), ',');
  const [text, label] = [header!.fields.indexOf('text'), header!.fields.indexOf('label')];
  const rows = records.slice(0, ROWS).map((r) => ({
    ids: rawIds(tok, r.fields[text]!).slice(0, 64),
    label: r.fields[label]!,
  }));
  const t = Math.max(...rows.map((r) => r.ids.length));
  const ids = new Int32Array(ROWS * t).fill(PAD);
  const mask = new Uint8Array(ROWS * t);
  rows.forEach((r, b) =>
    r.ids.forEach((v, j) => {
      ids[b * t + j] = v;
      mask[b * t + j] = 1;
    }),
  );
  return {
    inputs: () => ({
      inputIds: tensor(ids, { backend, shape: [ROWS, t], dtype: 'i32' }),
      attentionMask: tensor(mask, { backend, shape: [ROWS, t], dtype: 'bool' }),
    }),
    labels: () =>
      tensor(Int32Array.from(rows.map((r) => (r.label === 'positive' ? 1 : 0))), {
        backend,
        shape: [ROWS],
        dtype: 'i32',
      }),
  };
}
const data = batch();

function classifier(dtype: 'f32' | 'bf16'): GPT2ForSequenceClassification {
  return loadModel(BASE_MODEL, {
    backend,
    dtype,
    architecture: 'GPT2ForSequenceClassification',
    numLabels: 2,
    config: { pad_token_id: PAD },
    newHead: { seed: 0, warn: () => {} },
  }) as GPT2ForSequenceClassification;
}

describe(`bf16 policy on the demo's model (${backend.name})`, () => {
  test('the frozen base in bf16 moves the hidden states by bf16 rounding, mostly through the Linear weights', (t) => {
    const hidden = (m: GPT2ForSequenceClassification, setup?: () => void): Float32Array => {
      try {
        setup?.();
        return noGrad(() => m.transformer.forward(data.inputs()).toArray() as Float32Array);
      } finally {
        m.dispose();
      }
    };
    const ref = hidden(classifier('f32'));
    const bf16 = hidden(classifier('bf16'));
    // The bf16 model with its embedding tables widened back to the f32 checkpoint's values.
    const f32Tables = classifier('f32');
    const tables = [f32Tables.transformer.wte.weight, f32Tables.transformer.wpe.weight];
    const mixed = classifier('bf16');
    const wide = hidden(mixed, () => {
      assert.equal(mixed.transformer.wte.weight.dtype, 'bf16');
      mixed.transformer.wte.weight.dispose();
      mixed.transformer.wpe.weight.dispose();
      mixed.transformer.wte.weight = tables[0]!;
      mixed.transformer.wpe.weight = tables[1]!;
    });
    f32Tables.dispose();
    const all = relErr(bf16, ref);
    const linearsOnly = relErr(wide, ref);
    t.diagnostic(
      `hidden states: bf16 ${all.toExponential(2)}, with f32 embedding tables ${linearsOnly.toExponential(2)}`,
    );
    assert.ok(all > 1e-4, `bf16 rounds: ${all}`);
    assert.ok(all < 1e-2, `bf16 hidden states within 1e-2 relative of f32's: ${all}`);
    // Rounding errors of independent sources add in quadrature: the tables' share is the smaller one.
    const tablesShare = Math.sqrt(Math.max(0, all ** 2 - linearsOnly ** 2));
    assert.ok(tablesShare < linearsOnly, `embedding tables ${tablesShare} vs Linear weights ${linearsOnly}`);
  });

  test("VeRA's λ and head gradients in bf16 agree with f32's", (t) => {
    const grads = (dtype: 'f32' | 'bf16') => {
      const peft = getPeftModel(
        classifier(dtype),
        veraConfig({
          r: 256,
          target_modules: ['attn.c_attn', 'attn.c_proj'],
          fan_in_fan_out: true,
          task_type: 'SEQ_CLS',
          save_projection: false,
        }),
      );
      try {
        spreadLambdaB(peft);
        const loss = crossEntropy(peft.forward(data.inputs()), data.labels());
        backward(loss);
        const out = new Map<string, Float64Array>();
        for (const [name, p] of peft.namedParameters())
          if (p.requiresGrad) out.set(name, Float64Array.from(p.grad!.toArray() as Float32Array));
        return { loss: loss.item(), grads: out };
      } finally {
        peft.dispose();
      }
    };
    const f32 = grads('f32');
    const bf16 = grads('bf16');
    assert.deepEqual([...bf16.grads.keys()].sort(), [...f32.grads.keys()].sort());
    assert.ok(Math.abs(bf16.loss - f32.loss) <= 1e-3 * f32.loss, `loss ${bf16.loss} vs ${f32.loss}`);
    const kinds = { lambda_b: 'vera_lambda_b', lambda_d: 'vera_lambda_d', head: 'score' };
    for (const [kind, key] of Object.entries(kinds)) {
      const names = [...f32.grads.keys()].filter((n) => n.includes(key));
      assert.ok(names.length > 0, `${kind}: trained tensors found`);
      const cat = (g: Map<string, Float64Array>) => Float64Array.from(names.flatMap((n) => [...g.get(n)!]));
      const [a, b] = [cat(bf16.grads), cat(f32.grads)];
      const cos = cosine(a, b);
      const norm = Math.sqrt(a.reduce((s, x) => s + x * x, 0) / b.reduce((s, x) => s + x * x, 0));
      t.diagnostic(
        `${kind}: cosine ${cos.toFixed(6)}, norm ratio ${norm.toFixed(5)}, rel. error ${relErr(a, b).toExponential(2)}`,
      );
      assert.ok(cos >= 0.999, `${kind} gradient cosine ${cos}`);
      assert.ok(Math.abs(norm - 1) <= 0.02, `${kind} gradient norm ratio ${norm}`);
    }
  });
});
