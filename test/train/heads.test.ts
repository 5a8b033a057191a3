// summedLoss for causal LM: position t predicts token t + 1, labels of −100 and the last position
// count nothing, and the logits' gradient there is zero — checked against the loss written out by hand
// (log-softmax per position), with and without label smoothing.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import { getBackend } from '../../src/backends/registry.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { summedLoss } from '../../src/train/heads.js';

const backend = getBackend('js');

function byHand(logits: number[], labels: number[], b: number, t: number, v: number, eps: number): number {
  let total = 0;
  for (let i = 0; i < b; i++) {
    for (let j = 0; j + 1 < t; j++) {
      const target = labels[i * t + j + 1]!;
      if (target === -100) continue;
      const row = logits.slice((i * t + j) * v, (i * t + j + 1) * v);
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
      const nll = lse - row[target]!;
      const smooth = row.reduce((a, x) => a + (lse - x), 0) / v;
      total += (1 - eps) * nll + eps * smooth;
    }
  }
  return total;
}

for (const eps of [0, 0.1]) {
  test(`causal-lm summedLoss equals the shifted next-token loss by hand (label smoothing ${eps})`, () => {
    const [b, t, v] = [2, 5, 7];
    const values = Array.from(new Generator(5).uniform(b * t * v, -2, 2));
    const labels = [3, 1, -100, 6, 2, 0, 4, 4, 5, -100];
    const logits = tensor(Float64Array.from(values), { shape: [b, t, v], dtype: 'f64', backend, requiresGrad: true });
    const ids = tensor(labels, { dtype: 'i32', shape: [b, t], backend });
    const loss = summedLoss(logits, ids, 'causal-lm', eps);
    assert.ok(Math.abs(loss.item() - byHand(values, labels, b, t, v, eps)) < 1e-12);
    backward(loss);
    const g = logits.grad!.toNumbers();
    for (let i = 0; i < b; i++) {
      const last = g.slice((i * t + t - 1) * v, (i * t + t) * v);
      assert.deepEqual(last, Array(v).fill(0), 'the last position predicts nothing');
    }
    // Position 1 of row 0 predicts the ignored label: no gradient either.
    assert.deepEqual(g.slice(1 * v, 2 * v), Array(v).fill(0));
  });
}
