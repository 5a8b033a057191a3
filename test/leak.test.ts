// 1,000 training steps of a small MLP (forward, backward, AdamW, grad reset) inside scope(): the
// backend's live bytes must return to the same value after every step and resident memory must stay
// flat, on every backend. A leak of one activation per step would add ≥ 0.5 MB over the run.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backward } from '../src/autograd/backward.js';
import { Linear } from '../src/nn/layers.js';
import { Module } from '../src/nn/module.js';
import * as ops from '../src/ops/index.js';
import { AdamW } from '../src/optim/adamw.js';
import { tensor } from '../src/tensor/creation.js';
import { Generator } from '../src/tensor/random.js';
import { scope } from '../src/tensor/scope.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { testBackends } from './helpers/backends.js';

class MLP extends Module {
  fc1: Linear;
  fc2: Linear;
  constructor(opts: ConstructorParameters<typeof Linear>[2]) {
    super();
    this.fc1 = new Linear(32, 64, opts);
    this.fc2 = new Linear(64, 4, opts);
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(ops.dropout(ops.gelu(this.fc1.forward(x)), 0.1, this.training));
  }
}

for (const tb of testBackends()) {
  describe(`memory on ${tb.name.split(' ')[0]}`, () => {
    test('1,000 training steps keep live bytes constant and resident memory flat', () => {
      const backend = tb.backend;
      const g = new Generator(1);
      const model = new MLP({ generator: g, backend });
      const opt = new AdamW(model.parameters(), { lr: 1e-3 });
      const x = tensor(g.uniform(16 * 32, -1, 1), { shape: [16, 32], backend });
      const y = tensor(
        Array.from({ length: 16 }, (_, i) => i % 4),
        { dtype: 'i32', backend },
      );
      const step = () =>
        scope(() => {
          const loss = ops.crossEntropy(model.forward(x), y);
          backward(loss);
          opt.step();
          opt.zeroGrad();
          return loss.item();
        });
      const first = step();
      for (let i = 0; i < 99; i++) step();
      const live = backend.memory().allocated;
      const rss = process.memoryUsage().rss;
      let last = first;
      for (let i = 0; i < 900; i++) {
        last = step();
        assert.equal(backend.memory().allocated, live, `live bytes changed at step ${100 + i}`);
      }
      const grown = process.memoryUsage().rss - rss;
      assert.ok(grown < 16 * 2 ** 20, `resident memory grew by ${(grown / 2 ** 20).toFixed(1)} MiB over 900 steps`);
      assert.ok(last < first, `loss did not decrease (${first} → ${last})`);
      opt.dispose();
      model.dispose();
      x.dispose();
      y.dispose();
    });
  });
}
