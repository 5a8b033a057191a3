// nn.Module: HF-style dotted parameter names from typed fields (arrays by index), freezing, modes and
// counts; the basic layers compute what the ops they wrap compute.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { JsBackend } from '../../src/backends/js/index.js';
import { Embedding, LayerNorm, Linear, RMSNorm } from '../../src/nn/layers.js';
import { Module } from '../../src/nn/module.js';
import * as ops from '../../src/ops/index.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const backend = new JsBackend();

class Block extends Module {
  c_attn = new Linear(4, 12, { backend });
  ln_1 = new LayerNorm(4, 1e-5, { backend });
}

class Net extends Module {
  wte = new Embedding(10, 4, { backend });
  h = [new Block(), new Block()];
  ln_f = new RMSNorm(4, 1e-6, { backend });
  label = 'not a parameter';
}

describe('Module', () => {
  test('namedParameters() yields dotted paths in declaration order', () => {
    const names = new Net().namedParameters().map(([n]) => n);
    assert.deepEqual(names, [
      'wte.weight',
      'h.0.c_attn.weight',
      'h.0.c_attn.bias',
      'h.0.ln_1.weight',
      'h.0.ln_1.bias',
      'h.1.c_attn.weight',
      'h.1.c_attn.bias',
      'h.1.ln_1.weight',
      'h.1.ln_1.bias',
      'ln_f.weight',
    ]);
  });

  test('freeze(), unfreeze() and trainableParameters() agree; numParameters() counts', () => {
    const net = new Net();
    assert.equal(net.numParameters(), 40 + 2 * (48 + 12 + 4 + 4) + 4);
    net.freeze();
    assert.deepEqual(net.trainableParameters(), []);
    net.h[1]!.ln_1.unfreeze();
    assert.deepEqual(
      net.trainableParameters().map(([n]) => n),
      ['h.1.ln_1.weight', 'h.1.ln_1.bias'],
    );
    assert.equal(net.numParameters(true), 8);
  });

  test('train() and eval() set the mode of every submodule', () => {
    const net = new Net().eval();
    assert.ok(net.namedModules().every(([, m]) => !m.training));
    net.train();
    assert.ok(net.namedModules().every(([, m]) => m.training));
    assert.deepEqual(
      net.namedModules().map(([p]) => p),
      ['', 'wte', 'h.0', 'h.0.c_attn', 'h.0.ln_1', 'h.1', 'h.1.c_attn', 'h.1.ln_1', 'ln_f'],
    );
  });

  test('layers compute what their ops compute, with torch-like initialisation bounds', () => {
    const g = new Generator(3);
    const lin = new Linear(8, 3, { generator: g, backend });
    assert.ok(lin.weight.toNumbers().every((v) => Math.abs(v) <= 1 / Math.sqrt(8)));
    const x = tensor(g.uniform(16, -1, 1), { shape: [2, 8], backend });
    const same = (a: Tensor, b: Tensor) => assert.deepEqual(a.toNumbers(), b.toNumbers());
    same(lin.forward(x), ops.linear(x, lin.weight, lin.bias));
    const ln = new LayerNorm(8, 1e-5, { backend });
    same(ln.forward(x), ops.layerNorm(x, ln.weight, ln.bias, 1e-5));
    const emb = new Embedding(5, 2, { generator: g, backend });
    const ids = tensor([4, 0], { dtype: 'i32', backend });
    same(emb.forward(ids), ops.embedding(ids, emb.weight));
  });
});
