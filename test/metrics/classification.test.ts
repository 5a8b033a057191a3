// Classification, correlation and perplexity metrics against hand-derived values and independent
// textbook formulas (these run without the reference fixture; parity.test.ts adds sklearn/scipy).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  accuracy,
  f1,
  matthewsCorrcoef,
  meanNll,
  pearson,
  perplexity,
  rankAverage,
  spearman,
} from '../../src/metrics/index.js';
import { npMean, pairwiseSum } from '../../src/metrics/util.js';

const near = (got: number, want: number, tol = 1e-12) =>
  assert.ok(Math.abs(got - want) <= tol * Math.max(1, Math.abs(want)), `got ${got}, want ${want}`);

/** Deterministic LCG so the random cases are the same on every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
const randLabels = (r: () => number, n: number, k: number) => Array.from({ length: n }, () => Math.floor(r() * k));

describe('accuracy / f1 (hand-derived)', () => {
  // pred  1 1 0 1 0
  // gold  1 0 0 1 1
  // class 1: tp = 2 (i=0,3), fp = 1 (i=1), fn = 1 (i=4) -> P = R = 2/3 -> F1 = 2/3
  // class 0: tp = 1 (i=2), fp = 1 (i=4), fn = 1 (i=1) -> P = R = 1/2 -> F1 = 1/2
  const pred = [1, 1, 0, 1, 0];
  const gold = [1, 0, 0, 1, 1];
  test('accuracy = 3/5', () => near(accuracy(pred, gold), 3 / 5));
  test('binary F1 of class 1 = 2/3', () => near(f1(pred, gold), 2 / 3));
  test('binary F1 with positive=0 = 1/2', () => near(f1(pred, gold, { positive: 0 }), 1 / 2));
  test('macro F1 = (2/3 + 1/2) / 2', () => near(f1(pred, gold, { average: 'macro' }), (2 / 3 + 1 / 2) / 2));
  test('micro F1 = accuracy for single-label data', () => near(f1(pred, gold, { average: 'micro' }), 3 / 5));
  test('F1 is symmetric in (pred, gold)', () => near(f1(gold, pred), f1(pred, gold)));
});

describe('f1 edge cases (sklearn semantics)', () => {
  test('no positive anywhere: 0 (zero_division=0)', () => assert.equal(f1([0, 0, 0], [0, 0, 0]), 0));
  test('all positive and correct: 1', () => assert.equal(f1([1, 1], [1, 1]), 1));
  test('binary on multiclass labels throws', () => assert.throws(() => f1([0, 1, 2], [0, 1, 2]), /multiclass/));
  test('positive not among two present labels throws', () => assert.throws(() => f1([0, 2], [2, 0]), /not a valid/));
  test('one present label that is not the positive one: 0', () => assert.equal(f1([3, 3], [3, 3]), 0));
  test('a class only in pred counts in macro with F1 0', () => {
    // labels {0, 1, 2}: class 0: tp 1 fp 0 fn 1 -> 2/3; class 1: tp 1 fp 0 fn 0 -> 1; class 2: tp 0 fp 1 fn 0 -> 0
    near(f1([0, 1, 2], [0, 1, 0], { average: 'macro' }), (2 / 3 + 1 + 0) / 3);
  });
  test('macro F1 equals the mean of per-class 2PR/(P+R) computed independently', () => {
    const r = rng(7);
    for (let t = 0; t < 20; t++) {
      const gold = randLabels(r, 40, 5);
      const pred = gold.map((g) => (r() < 0.4 ? Math.floor(r() * 5) : g));
      const labels = [...new Set([...gold, ...pred])];
      let sum = 0;
      for (const l of labels) {
        const tp = pred.filter((p, i) => p === l && gold[i] === l).length;
        const predN = pred.filter((p) => p === l).length;
        const goldN = gold.filter((g) => g === l).length;
        const P = predN ? tp / predN : 0;
        const R = goldN ? tp / goldN : 0;
        sum += P + R > 0 ? (2 * P * R) / (P + R) : 0;
      }
      near(f1(pred, gold, { average: 'macro' }), sum / labels.length);
      near(f1(pred, gold, { average: 'micro' }), accuracy(pred, gold));
    }
  });
  test('bad input throws: lengths, non-integers, empty', () => {
    assert.throws(() => accuracy([1], [1, 0]), /labels/);
    assert.throws(() => f1([0.5, 1], [1, 1]), /integers/);
    assert.throws(() => matthewsCorrcoef([], []), /empty/);
  });
});

describe('matthewsCorrcoef', () => {
  test('binary: (tp·tn − fp·fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn))', () => {
    const r = rng(3);
    for (let t = 0; t < 20; t++) {
      const gold = randLabels(r, 50, 2);
      const pred = gold.map((g) => (r() < 0.3 ? 1 - g : g));
      let tp = 0;
      let tn = 0;
      let fp = 0;
      let fn = 0;
      pred.forEach((p, i) => {
        if (p === 1 && gold[i] === 1) tp++;
        else if (p === 0 && gold[i] === 0) tn++;
        else if (p === 1) fp++;
        else fn++;
      });
      near(
        matthewsCorrcoef(pred, gold),
        (tp * tn - fp * fn) / Math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)),
      );
    }
  });
  test('multiclass: Pearson correlation of the one-hot matrices (Gorodkin R_K)', () => {
    const r = rng(11);
    for (let t = 0; t < 10; t++) {
      const gold = randLabels(r, 60, 4);
      const pred = gold.map((g) => (r() < 0.5 ? Math.floor(r() * 4) : g));
      const K = 4;
      const n = gold.length;
      // cov(X, Y) = Σ_k Σ_i (x_ik − mean_k(x))(y_ik − mean_k(y))
      const cov = (a: number[], b: number[]) => {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const xa = a.map((v): number => (v === k ? 1 : 0));
          const xb = b.map((v): number => (v === k ? 1 : 0));
          const ma = xa.reduce((u, v) => u + v, 0) / n;
          const mb = xb.reduce((u, v) => u + v, 0) / n;
          for (let i = 0; i < n; i++) s += (xa[i] - ma) * (xb[i] - mb);
        }
        return s;
      };
      near(matthewsCorrcoef(pred, gold), cov(pred, gold) / Math.sqrt(cov(pred, pred) * cov(gold, gold)), 1e-10);
    }
  });
  test('perfect = 1, inverted binary = −1, constant prediction = 0', () => {
    near(matthewsCorrcoef([0, 1, 2, 1], [0, 1, 2, 1]), 1);
    near(matthewsCorrcoef([1, 0, 1, 0], [0, 1, 0, 1]), -1);
    assert.equal(matthewsCorrcoef([1, 1, 1], [0, 1, 0]), 0);
  });
});

describe('pearson / spearman', () => {
  test('hand-derived Pearson: x = 1..5, y = 2 4 5 4 5 -> 6 / sqrt(60)', () => {
    // dx = -2 -1 0 1 2, dy = -2 0 1 0 1: Σdxdy = 6, Σdx² = 10, Σdy² = 6
    near(pearson([1, 2, 3, 4, 5], [2, 4, 5, 4, 5]), 6 / Math.sqrt(60));
  });
  test('Pearson equals the textbook formula on random data', () => {
    const r = rng(5);
    for (let t = 0; t < 20; t++) {
      const n = 3 + Math.floor(r() * 50);
      const x = Array.from({ length: n }, () => r() * 10 - 5);
      const y = x.map((v) => v * (r() - 0.5) + r());
      const mx = x.reduce((a, b) => a + b, 0) / n;
      const my = y.reduce((a, b) => a + b, 0) / n;
      let sxy = 0;
      let sxx = 0;
      let syy = 0;
      for (let i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) ** 2;
        syy += (y[i] - my) ** 2;
      }
      near(pearson(x, y), sxy / Math.sqrt(sxx * syy), 1e-10);
    }
  });
  test('scipy edge cases: constant -> NaN, n = 2 -> sign product, n < 2 throws', () => {
    assert.ok(Number.isNaN(pearson([3, 3, 3], [1, 2, 3])));
    assert.equal(pearson([1, 2], [5, 3]), -1);
    assert.throws(() => pearson([1], [2]), /at least 2/);
    assert.ok(Number.isNaN(spearman([1], [2])));
    assert.ok(Number.isNaN(spearman([1, 2, 3], [4, 4, 4])));
  });
  test('average ranks: ties share the mean of their ranks', () => {
    assert.deepEqual(rankAverage([10, 20, 20, 30]), [1, 2.5, 2.5, 4]);
    assert.deepEqual(rankAverage([3, 1, 3, 3, 2]), [4, 1, 4, 4, 2]);
  });
  test('hand-derived Spearman with ties: x = 1 2 2 3, y = 1 3 2 4 -> 4.5 / sqrt(22.5)', () => {
    // ranks x = 1 2.5 2.5 4, y = 1 3 2 4; dx = -1.5 0 0 1.5, dy = -1.5 .5 -.5 1.5: Σdxdy = 4.5, Σdx² = 4.5, Σdy² = 5
    near(spearman([1, 2, 2, 3], [1, 3, 2, 4]), 4.5 / Math.sqrt(22.5));
  });
  test('without ties Spearman = 1 − 6Σd² / (n(n² − 1))', () => {
    const r = rng(9);
    for (let t = 0; t < 20; t++) {
      const n = 3 + Math.floor(r() * 40);
      const x = Array.from({ length: n }, () => r());
      const y = Array.from({ length: n }, () => r());
      const rx = rankAverage(x);
      const ry = rankAverage(y);
      const d2 = rx.reduce((s, v, i) => s + (v - ry[i]) ** 2, 0);
      near(spearman(x, y), 1 - (6 * d2) / (n * (n * n - 1)), 1e-10);
    }
  });
  test("numpy's pairwise summation: equals the plain sum on integers, differs from it where numpy does", () => {
    const ints = Array.from({ length: 1000 }, (_, i) => i);
    assert.equal(pairwiseSum(ints), 499500);
    assert.equal(npMean([1, 2, 3, 4]), 2.5);
    // 1e16 + 1 + 1 ... : a sequential sum loses every +1, numpy's 8 interleaved accumulators do too,
    // but the block structure is observable: this is the value numpy gives for np.sum of this array.
    const a = [1e16, ...new Array<number>(15).fill(1)];
    assert.equal(pairwiseSum(a), 1e16 + 14);
  });
});

describe('perplexity', () => {
  test('exp of the mean NLL', () => {
    near(perplexity(Math.log(7)), 7);
    assert.equal(perplexity(0), 1);
    assert.equal(perplexity(1000), Infinity);
  });
  test('meanNll weights batches by tokens', () => {
    near(
      meanNll([
        { nllSum: 10, tokens: 4 },
        { nllSum: 2, tokens: 1 },
      ]),
      12 / 5,
    );
    assert.throws(() => meanNll([]), /no tokens/);
  });
});
