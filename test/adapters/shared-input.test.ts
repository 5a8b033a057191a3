// VeRA's shared input (src/adapters/vera/shared-input.ts): layers reading the same x compute A_s·x once.
// Outputs equal the unshared path (PEFT's arithmetic) bit for bit and gradients up to the order of one
// sum; the GEMMs saved are exactly those the model's structure predicts; and wherever a product could be
// stale (grad mode, x.requiresGrad, disposal, a freed graph, no scope, new or reloaded projections,
// dropout, checkpoint recomputation) the layer computes it afresh — each case is run with sharing on and
// off and the results compared, with the GEMM counts telling whether the product was reused.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type PeftModel, getPeftModel, veraConfig } from '../../src/adapters/index.js';
import type { VeraConfig } from '../../src/adapters/vera/config.js';
import { SharedInputProjection } from '../../src/adapters/vera/shared-input.js';
import { backward } from '../../src/autograd/backward.js';
import { checkpoint } from '../../src/autograd/checkpoint.js';
import { noGrad } from '../../src/autograd/graph.js';
import type { Backend } from '../../src/backends/backend.js';
import { getBackend } from '../../src/backends/registry.js';
import { SafetensorsReader, writeSafetensors } from '../../src/io/safetensors.js';
import { createModel } from '../../src/models/auto.js';
import type { PreTrainedModel } from '../../src/models/pretrained.js';
import { Linear } from '../../src/nn/layers.js';
import { Module } from '../../src/nn/module.js';
import * as ops from '../../src/ops/index.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator, dropoutStream } from '../../src/tensor/random.js';
import { keep, scope } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { countingBackend, nativeSkip } from '../helpers/backends.js';

const LAYERS = 2;
const LLAMA = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 32,
  intermediate_size: 48,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 8,
  num_hidden_layers: LAYERS,
  vocab_size: 64,
  rms_norm_eps: 1e-6,
  tie_word_embeddings: false,
};
/** q/k/v read one input, gate/up another: 3 + 2 products become 1 + 1 per block. */
const SHARING = ['q_proj', 'k_proj', 'v_proj', 'gate_proj', 'up_proj'];

const maxRelDiff = (a: number[], b: number[]) => {
  const scale = Math.max(...b.map(Math.abs), 1e-30);
  return Math.max(...a.map((v, i) => Math.abs(v - b[i]!))) / scale;
};

/** Every λ a distinct non-trivial value, the same for the same seed. */
function randomizeLambdas(peft: PeftModel, seed: number): void {
  const g = new Generator(seed);
  noGrad(() => {
    for (const [name, t] of peft.trainableParameters()) {
      const v = tensor(g.uniform(t.numel, -1, 1), { shape: t.shape, backend: t.backend });
      t.backend.copy(t.view(name), v.view(name));
      v.dispose();
    }
  });
}

function zeroGrads(peft: PeftModel): void {
  for (const [, t] of peft.trainableParameters()) {
    t.grad?.dispose();
    t.grad = null;
  }
}

function tinyLlama(backend: Backend, targets = SHARING): PeftModel<PreTrainedModel> {
  const model = createModel(LLAMA, { seed: 0, backend }).freeze();
  const peft = getPeftModel(model, veraConfig({ r: 8, target_modules: targets, init_weights: false }));
  randomizeLambdas(peft, 1);
  return peft;
}

const idsOn = (backend: Backend) =>
  tensor(
    Int32Array.from({ length: 2 * 5 }, (_, i) => (i * 7 + 3) % LLAMA.vocab_size),
    { dtype: 'i32', shape: [2, 5], backend },
  );

/** One training step's outputs and λ gradients, and the GEMMs the forward and the backward ran. */
function trainStep(peft: PeftModel<PreTrainedModel>, calls: Map<string, number> | null) {
  zeroGrads(peft);
  const backend = peft.parameters()[0]!.backend;
  return scope(() => {
    calls?.clear();
    const y = peft.forward({ inputIds: idsOn(backend) });
    const forwardGemms = calls?.get('matmul') ?? 0;
    const loss = ops.mean(ops.square(y));
    calls?.clear();
    backward(loss);
    return {
      out: y.toNumbers(),
      grads: new Map(peft.trainableParameters().map(([n, t]) => [n, t.grad!.toNumbers()])),
      forwardGemms,
      backwardGemms: calls?.get('matmul') ?? 0,
    };
  });
}

describe('VeRA shared input: a tiny Llama with VeRA on q/k/v/gate/up', () => {
  const equalityCases: { name: string; backend: () => Backend; rtol: number; skip: string | false }[] = [
    { name: 'js', backend: () => countingBackend().backend, rtol: 1e-5, skip: false },
    { name: 'native', backend: () => getBackend('native'), rtol: 1e-4, skip: nativeSkip() },
  ];
  for (const c of equalityCases) {
    test(
      `${c.name}: outputs are the unshared path's floats; λ gradients equal it (the last MLP's bit for bit)`,
      {
        skip: c.skip,
      },
      () => {
        const peft = tinyLlama(c.backend());
        peft.shareVeraInput = false;
        const ref = trainStep(peft, null);
        peft.shareVeraInput = true;
        const got = trainStep(peft, null);
        // The first layer's h is the tensor the others would have computed: the forward is identical.
        assert.deepEqual(got.out, ref.out);
        assert.equal(got.grads.size, ref.grads.size);
        for (const [name, g] of ref.grads) {
          const mine = got.grads.get(name)!;
          // Above the last MLP's input nothing changes; below it, the input gradient is Σ_i dh_i · A_s in
          // one GEMM instead of Σ_i (dh_i · A_s): the same sum, rounded in another order.
          if (name.includes(`layers.${LAYERS - 1}.mlp.`)) assert.deepEqual(mine, g, name);
          else assert.ok(maxRelDiff(mine, g) < c.rtol, `${name}: ${maxRelDiff(mine, g)}`);
        }
      },
    );
  }

  test('GEMMs: the forward saves 3 per block, the backward 1 dX through A per sharing group with an input gradient', () => {
    const { backend, calls } = countingBackend();
    const peft = tinyLlama(backend);
    peft.shareVeraInput = false;
    const off = trainStep(peft, calls);
    peft.shareVeraInput = true;
    const on = trainStep(peft, calls);
    // Forward, per block: 7 base linears, and for each of the 5 VeRA layers h = x·A_sᵀ and (λ_d ⊙ h)·B_sᵀ;
    // sharing computes h once for q/k/v and once for gate/up. Plus lm_head.
    const perBlock = (hProducts: number) => 7 + 5 + hProducts;
    assert.equal(off.forwardGemms, LAYERS * perBlock(5) + 1);
    assert.equal(on.forwardGemms, LAYERS * perBlock(2) + 1);
    // Backward (frozen weights: dX GEMMs only, never dW): lm_head, o_proj and down_proj 1 each; the 5
    // VeRA layers' B side 1 each (λ_d trains); gate/up base 2 and their A side (h's dX) 2 unshared, 1
    // shared. q/k/v read input_layernorm(x), which needs a gradient only from block 1 on (block 0's input
    // is a frozen embedding): there the base 3 and the A side 3 unshared, 1 shared.
    const block = (first: boolean, shared: boolean) =>
      1 + 1 + 5 + 2 + (shared ? 1 : 2) + (first ? 0 : 3 + (shared ? 1 : 3));
    const total = (shared: boolean) =>
      1 + Array.from({ length: LAYERS }, (_, i) => block(i === 0, shared)).reduce((a, b) => a + b, 0);
    assert.equal(off.backwardGemms, total(false));
    assert.equal(on.backwardGemms, total(true));
    assert.equal(off.backwardGemms - on.backwardGemms, 1 + 3 * (LAYERS - 1));
  });

  test('all seven projections adapted: o_proj and down_proj read their own inputs, nothing more is shared', () => {
    const { backend, calls } = countingBackend();
    const peft = tinyLlama(backend, [...SHARING, 'o_proj', 'down_proj']);
    peft.shareVeraInput = false;
    const off = trainStep(peft, calls);
    peft.shareVeraInput = true;
    const on = trainStep(peft, calls);
    assert.equal(off.forwardGemms - on.forwardGemms, 3 * LAYERS);
    assert.equal(off.backwardGemms - on.backwardGemms, 1 + 3 * (LAYERS - 1));
    assert.deepEqual(on.out, off.out);
  });

  test('mixed-adapter batches reuse the product too, with the same outputs', () => {
    const { backend, calls } = countingBackend();
    const peft = tinyLlama(backend);
    peft.addAdapter('other', veraConfig({ r: 8, target_modules: SHARING, init_weights: false }));
    randomizeLambdas(peft, 2);
    peft.model.eval();
    const run = (share: boolean) => {
      peft.shareVeraInput = share;
      calls.clear();
      const out = noGrad(() =>
        scope(() =>
          peft.withAdapterNames(['default', 'other'], () => peft.forward({ inputIds: idsOn(backend) }).toNumbers()),
        ),
      );
      return { out, gemms: calls.get('matmul')! };
    };
    const off = run(false);
    const on = run(true);
    assert.deepEqual(on.out, off.out);
    assert.equal(off.gemms - on.gemms, 3 * LAYERS);
  });

  test('the option: getPeftModel({ shareVeraInput: false }) computes every product', () => {
    const { backend, calls } = countingBackend();
    const model = createModel(LLAMA, { seed: 0, backend }).freeze();
    const peft = getPeftModel(model, veraConfig({ r: 8, target_modules: SHARING }), { shareVeraInput: false });
    assert.equal(peft.shareVeraInput, false);
    const off = trainStep(peft, calls);
    peft.shareVeraInput = true;
    assert.equal(off.forwardGemms - trainStep(peft, calls).forwardGemms, 3 * LAYERS);
  });
});

/** Two frozen linear layers reading the same input, both adapted: the smallest sharing group. */
class Fork extends Module {
  a: Linear;
  b: Linear;
  constructor(backend: Backend) {
    super();
    const generator = new Generator(3);
    this.a = new Linear(6, 5, { generator, backend });
    this.b = new Linear(6, 7, { generator, backend });
    this.freeze();
  }
  forward(x: Tensor): Tensor {
    return ops.add(ops.sum(this.a.forward(x)), ops.sum(this.b.forward(x)));
  }
}

const FORK_CONFIG: Partial<VeraConfig> = { r: 4, target_modules: ['a', 'b'], init_weights: false };

interface ForkRun {
  values: number[][];
  xGrad: number[] | null;
  lambdaGrads: number[][];
  gemms: number;
}

/**
 * Runs `body` on a fresh Fork (same weights every time) with sharing on and off. `body` returns the
 * tensors to compare; x is a leaf (5, 6) on the counting backend, requiring grad unless told otherwise.
 */
function onAndOff(
  body: (fork: Fork, x: Tensor, peft: PeftModel<Fork>) => Tensor[],
  opts: { config?: Partial<VeraConfig>; xRequiresGrad?: boolean } = {},
): { on: ForkRun; off: ForkRun } {
  const run = (share: boolean): ForkRun => {
    const { backend, calls } = countingBackend();
    const peft = getPeftModel(new Fork(backend), veraConfig({ ...FORK_CONFIG, ...opts.config }), {
      shareVeraInput: share,
    });
    randomizeLambdas(peft, 4);
    const x = keep(
      tensor(new Generator(5).uniform(30, -1, 1), {
        shape: [5, 6],
        backend,
        requiresGrad: opts.xRequiresGrad ?? true,
      }),
    );
    calls.clear();
    const values = body(peft.model, x, peft).map((t) => t.toNumbers());
    return {
      values,
      xGrad: x.grad?.toNumbers() ?? null,
      lambdaGrads: peft.trainableParameters().map(([, t]) => t.grad?.toNumbers() ?? []),
      gemms: calls.get('matmul') ?? 0,
    };
  };
  return { on: run(true), off: run(false) };
}

function assertSameResults(r: { on: ForkRun; off: ForkRun }, rtol = 1e-5): void {
  assert.deepEqual(r.on.values, r.off.values);
  assert.equal(r.on.xGrad === null, r.off.xGrad === null, 'x.grad present in one path only');
  if (r.on.xGrad && r.off.xGrad) assert.ok(maxRelDiff(r.on.xGrad, r.off.xGrad) < rtol, 'x.grad');
  r.off.lambdaGrads.forEach((g, i) => assert.ok(maxRelDiff(r.on.lambdaGrads[i]!, g) <= rtol, `λ grad ${i}`));
}

const sumAll = (ts: Tensor[]) => ts.map((t) => ops.sum(t)).reduce((s, t) => ops.add(s, t));

describe('VeRA shared input: when a product is reused and when it is not', () => {
  test('inside a scope: reused, forward and backward (control for the cases below)', () => {
    const r = onAndOff((f, x) =>
      scope(() => {
        const ys = [f.a.forward(x), f.b.forward(x)];
        backward(sumAll(ys));
        return ys.map(keep);
      }),
    );
    assertSameResults(r);
    // Forward: one h instead of two; backward: one dX through A instead of two.
    assert.equal(r.off.gemms - r.on.gemms, 2);
  });

  test('outside any scope: not reused (nothing would bound the product’s life)', () => {
    const r = onAndOff((f, x) => {
      const ys = [f.a.forward(x), f.b.forward(x)];
      backward(sumAll(ys));
      return ys;
    });
    assertSameResults(r);
    assert.equal(r.on.gemms, r.off.gemms);
  });

  test('a product made under noGrad is not reused with grad on (it has no graph node)', () => {
    const r = onAndOff((f, x) =>
      scope(() => {
        const first = noGrad(() => f.a.forward(x));
        const second = f.b.forward(x);
        backward(ops.sum(second));
        return [keep(first), keep(second)];
      }),
    );
    assertSameResults(r);
    assert.equal(r.on.gemms, r.off.gemms);
    assert.ok(r.on.xGrad);
  });

  test('a product made before x required grad is not reused after', () => {
    const r = onAndOff(
      (f, x) =>
        scope(() => {
          const first = f.a.forward(x);
          x.setRequiresGrad(true);
          const second = f.b.forward(x);
          backward(ops.sum(second));
          return [keep(first), keep(second)];
        }),
      { xRequiresGrad: false },
    );
    assertSameResults(r);
    assert.equal(r.on.gemms, r.off.gemms);
  });

  test('a product disposed with an inner scope is computed again', () => {
    const r = onAndOff((f, x) =>
      scope(() => {
        const first = scope(() => f.a.forward(x));
        const second = f.b.forward(x);
        backward(ops.add(ops.sum(first), ops.sum(second)));
        return [keep(first), keep(second)];
      }),
    );
    assertSameResults(r);
    assert.equal(r.on.gemms, r.off.gemms);
  });

  test('a product whose graph an earlier backward freed is computed again', () => {
    const r = onAndOff((f, x) =>
      scope(() => {
        const first = f.a.forward(x);
        backward(ops.sum(first));
        const second = f.b.forward(x);
        backward(ops.sum(second)); // would throw GraphFreedError through a reused h
        return [keep(first), keep(second)];
      }),
    );
    assertSameResults(r);
    assert.equal(r.on.gemms, r.off.gemms);
  });

  test('projections replaced (adapter deleted, another added with a new seed) are not confused with the old', () => {
    const r = onAndOff((f, x, peft) =>
      noGrad(() =>
        scope(() => {
          const first = f.a.forward(x);
          peft.deleteAdapter('default');
          peft.addAdapter('other', veraConfig({ ...FORK_CONFIG, projection_prng_key: 7 }));
          return [keep(first), keep(f.b.forward(x))];
        }),
      ),
    );
    assertSameResults(r);
    assert.equal(r.on.gemms, r.off.gemms);
  });

  test('projections overwritten in place by loading an adapter file are not confused with the old', () => {
    // An adapter file whose stored vera_A differs (PEFT loads it over the shared A of every adapter).
    const dir = mkdtempSync(join(tmpdir(), 'vera-shared-'));
    const saver = getPeftModel(new Fork(getBackend('js')), veraConfig(FORK_CONFIG));
    saver.savePretrained(dir);
    const weights = join(dir, 'adapter_model.safetensors');
    const reader = SafetensorsReader.open(weights);
    const m = new Map(reader.names().map((k) => [k, reader.tensor(k)]));
    reader.close();
    m.set('base_model.vera_A', ops.mulScalar(m.get('base_model.vera_A')!, 2));
    writeSafetensors(weights, m, { format: 'pt' });
    const r = onAndOff((f, x, peft) =>
      noGrad(() =>
        scope(() => {
          const first = f.a.forward(x);
          peft.loadAdapter(dir, 'loaded');
          return [keep(first), keep(f.b.forward(x))];
        }),
      ),
    );
    assertSameResults(r);
    assert.equal(r.on.gemms, r.off.gemms);
  });

  test('vera_dropout in training: every layer draws its own mask, nothing is shared; in eval it is', () => {
    const body = (train: boolean) => (f: Fork, x: Tensor) =>
      scope(() => {
        f.train(train);
        dropoutStream.restore({ seed: 11, offset: 0 });
        const ys = [f.a.forward(x), f.b.forward(x)];
        backward(sumAll(ys));
        return ys.map(keep);
      });
    const training = onAndOff(body(true), { config: { vera_dropout: 0.5 } });
    assertSameResults(training);
    assert.equal(training.on.gemms, training.off.gemms);
    const evaluating = onAndOff(body(false), { config: { vera_dropout: 0.5 } });
    assertSameResults(evaluating);
    assert.equal(evaluating.off.gemms - evaluating.on.gemms, 2);
  });

  test('activation checkpointing: the recomputation (detached inputs) shares within itself, gradients equal', () => {
    const r = onAndOff((f, x, peft) =>
      scope(() => {
        const lambdas = peft.trainableParameters().map(([, t]) => t);
        const y = checkpoint((xd) => sumAll([f.a.forward(xd), f.b.forward(xd)]), [x], lambdas);
        backward(y);
        return [keep(y)];
      }),
    );
    assertSameResults(r);
    // The no-grad forward and the recomputation each compute one h instead of two; one dX through A.
    assert.equal(r.off.gemms - r.on.gemms, 3);
  });
});

describe('SharedInputProjection', () => {
  test('keys on the projection tensor and the slice width, and clear() forgets', () => {
    const { backend, calls } = countingBackend();
    const rand = (shape: number[], seed: number) =>
      tensor(new Generator(seed).uniform(shape[0]! * shape[1]!, -1, 1), { shape, backend });
    scope(() => {
      const shared = new SharedInputProjection();
      const x = rand([3, 4], 1);
      const [a1, a2] = [rand([2, 6], 2), rand([2, 6], 3)];
      calls.clear();
      const h = shared.project(x, a1, 4);
      assert.equal(shared.project(x, a1, 4), h);
      assert.equal(calls.get('matmul'), 1);
      const other = shared.project(x, a2, 4); // another A: its own product
      assert.notEqual(other, h);
      assert.deepEqual(other.toNumbers(), ops.linear(x, ops.slice(a2, 1, 0, 4)).toNumbers());
      assert.equal(shared.project(x, a1, 4), h, 'both products are kept');
      shared.clear();
      assert.notEqual(shared.project(x, a1, 4), h);
      shared.enabled = false;
      const before = calls.get('matmul')!;
      shared.project(x, a1, 4);
      shared.project(x, a1, 4);
      assert.equal(calls.get('matmul'), before + 2, 'disabled: every call computes');
    });
  });
});
