// Optimizers: AdamW reproduces torch.optim.AdamW (fixture from test/parity/gen_ops.py), honours
// parameter groups and skips parameters without gradients; clipGradNorm matches the global-norm rule.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { JsBackend } from '../../src/backends/js/index.js';
import { AdamW } from '../../src/optim/adamw.js';
import { clipGradNorm } from '../../src/optim/clip.js';
import { tensor } from '../../src/tensor/creation.js';

const backend = new JsBackend();
const f64 = (data: number[]) => tensor(Float64Array.from(data), { dtype: 'f64', backend });

describe('AdamW', () => {
  test('three steps match torch.optim.AdamW', () => {
    const fixture = JSON.parse(
      readFileSync(new URL('../../../test/parity/fixtures/ops.json', import.meta.url), 'utf8'),
    ) as {
      cases: {
        op: string;
        attrs: Record<string, number>;
        inputs: Record<string, { data: number[] }>;
        out: { data: number[] };
      }[];
    };
    const c = fixture.cases.find((x) => x.op === 'adamw')!;
    const p = f64(c.inputs['p']!.data).setRequiresGrad(true);
    const opt = new AdamW([p], {
      lr: c.attrs['lr']!,
      betas: [c.attrs['beta1']!, c.attrs['beta2']!],
      eps: c.attrs['eps']!,
      weightDecay: c.attrs['weightDecay']!,
    });
    for (let i = 0; i < 3; i++) {
      p.grad = f64(c.inputs[`g${i}`]!.data);
      opt.step();
    }
    p.toNumbers().forEach((v, i) =>
      assert.ok(Math.abs(v - c.out.data[i]!) < 1e-12, `element ${i}: ${v} vs ${c.out.data[i]}`),
    );
    assert.equal(opt.stepCount, 3);
  });

  test('parameter groups keep their own learning rates; parameters without grad stay put', () => {
    const a = f64([1, 1]).setRequiresGrad(true);
    const b = f64([1, 1]).setRequiresGrad(true);
    const idle = f64([5]).setRequiresGrad(true);
    const opt = new AdamW(
      [
        { params: [a], lr: 0.1 },
        { params: [b, idle], lr: 0.01 },
      ],
      { weightDecay: 0 },
    );
    a.grad = f64([1, -1]);
    b.grad = f64([1, -1]);
    opt.step();
    // The first Adam step moves each element by lr·sign(g) (up to eps).
    assert.deepEqual(
      a.toNumbers().map((v) => Math.round(v * 1e6) / 1e6),
      [0.9, 1.1],
    );
    assert.deepEqual(
      b.toNumbers().map((v) => Math.round(v * 1e6) / 1e6),
      [0.99, 1.01],
    );
    assert.deepEqual(idle.toNumbers(), [5]);
    opt.zeroGrad();
    assert.equal(a.grad, null);
  });
});

describe('clipGradNorm', () => {
  test('scales all gradients by maxNorm / globalNorm and returns the norm', () => {
    const a = f64([0]).setRequiresGrad(true);
    const b = f64([0, 0]).setRequiresGrad(true);
    a.grad = f64([3]);
    b.grad = f64([0, 4]);
    assert.equal(clipGradNorm([a, b], 1).item(), 5);
    assert.ok(Math.abs(a.grad.toNumbers()[0]! - 0.6) < 1e-6);
    assert.ok(Math.abs(b.grad.toNumbers()[1]! - 0.8) < 1e-6);
    // Under the limit nothing changes.
    const before = b.grad.toNumbers();
    assert.ok(Math.abs(clipGradNorm([a, b], 10).item() - 1) < 1e-6);
    assert.deepEqual(b.grad.toNumbers(), before);
  });
});
