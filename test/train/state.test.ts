// What resuming and new heads rest on: AdamW's state round trip continues the same updates, the
// generator and the dropout stream restore exactly, a new classification head on a causal-LM or
// other-sized checkpoint loads every other weight exactly, and random initialisation is seeded.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { createModel, loadModel } from '../../src/models/auto.js';
import * as ops from '../../src/ops/index.js';
import { AdamW } from '../../src/optim/adamw.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator, dropoutStream, manualSeed, rngState, setRngState } from '../../src/tensor/random.js';
import { scope } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { FIXTURES, scratch } from './helpers.js';

const { cleanup } = scratch('state');
after(() => cleanup());

describe('AdamW state', () => {
  const params = (): Tensor[] => [
    tensor([0.5, -1, 2], { requiresGrad: true }),
    tensor(
      [
        [1, 2],
        [3, 4],
      ],
      { requiresGrad: true },
    ),
    tensor([7], { requiresGrad: true }), // never gets a gradient: no state
  ];
  const step = (opt: AdamW, ps: Tensor[], k: number) =>
    scope(() => {
      const loss = ops.add(ops.sum(ops.square(ops.mulScalar(ps[0]!, k))), ops.sum(ops.mul(ps[1]!, ps[1]!)));
      backward(loss);
      opt.step();
      opt.zeroGrad();
    });

  test('stateDict → loadStateDict continues with the same updates', () => {
    const a = params();
    const optA = new AdamW([
      { params: [a[0]!], lr: 0.1 },
      { params: [a[1]!, a[2]!], lr: 0.05, weightDecay: 0 },
    ]);
    for (let k = 1; k <= 3; k++) step(optA, a, k);
    const sd = optA.stateDict();
    assert.equal(sd.step, 3);
    assert.deepEqual(
      sd.groups.map((g) => g.size),
      [1, 2],
    );
    assert.equal(sd.state[2], null);
    const b = a.map((p) => tensor(p.toArray() as Float32Array, { shape: p.shape, requiresGrad: true }));
    const optB = new AdamW([
      { params: [b[0]!], lr: 0.1 },
      { params: [b[1]!, b[2]!], lr: 0.05, weightDecay: 0 },
    ]);
    optB.loadStateDict(sd);
    for (let k = 4; k <= 6; k++) {
      step(optA, a, k);
      step(optB, b, k);
    }
    a.forEach((p, i) => assert.deepEqual(b[i]!.toNumbers(), p.toNumbers()));
    assert.equal(optB.stepCount, 6);
  });

  test('loadStateDict refuses another layout', () => {
    const opt = new AdamW(params(), { lr: 0.1 });
    const other = new AdamW([{ params: params() }, { params: params() }]);
    assert.throws(() => opt.loadStateDict(other.stateDict()), /groups of \(3, 3\) parameters, this optimizer \(3\)/);
  });
});

describe('random state', () => {
  test('Generator.state/setState: the draws continue exactly', () => {
    const g = new Generator(123);
    g.uniform(1000, 0, 1); // past the first twist
    const s = g.state();
    const want = [...g.uniform(700, -1, 1), g.nextU32()];
    const h = new Generator(9).setState(JSON.parse(JSON.stringify(s)));
    assert.deepEqual([...h.uniform(700, -1, 1), h.nextU32()], want);
    assert.equal(h.seed, 123n);
    assert.throws(() => h.setState({ ...s, index: 625 }), /setState/);
  });

  test('rngState/setRngState restore the default generator and the dropout stream position', () => {
    manualSeed(5);
    dropoutStream.take(40);
    const s = rngState();
    const x = tensor(new Float32Array(64).fill(1));
    const mask1 = ops.dropout(x, 0.5).toNumbers();
    const u1 = new Generator().setState(s.generator).nextU32();
    setRngState(s);
    assert.deepEqual(ops.dropout(x, 0.5).toNumbers(), mask1);
    assert.equal(s.dropout.offset, 40);
    assert.equal(u1, new Generator().setState(rngState().generator).nextU32());
  });
});

describe('a new head on a pretrained base', () => {
  const base = `${FIXTURES}/gpt2-lm`;

  test('GPT2LMHeadModel file → GPT2ForSequenceClassification: transformer.* exact, score new, lm_head ignored', () => {
    const warnings: string[] = [];
    const cls = loadModel(base, {
      architecture: 'GPT2ForSequenceClassification',
      numLabels: 2,
      newHead: { seed: 1, warn: (m) => warnings.push(m) },
    });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /GPT2ForSequenceClassification .* newly initialized: \['score\.weight'\]/);
    const ckpt = Checkpoint.open(base);
    for (const [name, p] of cls.namedParameters()) {
      if (name === 'score.weight') continue;
      const t = ckpt.tensor(name, { dtype: 'f32' });
      assert.deepEqual(p.toNumbers(), t.toNumbers(), name);
      t.dispose();
    }
    ckpt.close();
    const score = cls.stateDict().get('score.weight')!.toNumbers();
    assert.equal(score.length, 2 * 32);
    const std = Math.sqrt(score.reduce((s, v) => s + v * v, 0) / score.length);
    assert.ok(std > 0.01 && std < 0.04, `std ${std} ≈ initializer_range 0.02`);
    const again = loadModel(base, {
      architecture: 'GPT2ForSequenceClassification',
      numLabels: 2,
      newHead: { seed: 1, warn: () => {} },
    });
    assert.deepEqual(again.stateDict().get('score.weight')!.toNumbers(), score, 'seeded');
    assert.deepEqual(cls.config['id2label'], { '0': 'LABEL_0', '1': 'LABEL_1' });
    assert.throws(
      () => loadModel(base, { architecture: 'GPT2ForSequenceClassification' }),
      /missing key "score\.weight" .*load it with newHead/,
    );
  });

  test('a 3-label RoBERTa classifier loaded for 2 labels: out_proj is replaced, everything else loads exactly', () => {
    const dir = `${FIXTURES}/roberta-seqcls`;
    const warnings: string[] = [];
    const m = loadModel(dir, { numLabels: 2, newHead: { seed: 0, warn: (w) => warnings.push(w) } });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /\['classifier\.out_proj\.weight', 'classifier\.out_proj\.bias'\]/);
    const sd = m.stateDict();
    assert.deepEqual(sd.get('classifier.out_proj.bias')!.toNumbers(), [0, 0]);
    const ckpt = Checkpoint.open(dir);
    for (const [name, p] of sd) {
      if (name.startsWith('classifier.out_proj.')) continue;
      const t = ckpt.tensor(name, { dtype: 'f32' });
      assert.deepEqual(p.toNumbers(), t.toNumbers(), name);
      t.dispose();
    }
    ckpt.close();
    // The same size: the checkpoint's head loads as it is, without a warning.
    const same: string[] = [];
    loadModel(dir, { numLabels: 3, newHead: { seed: 0, warn: (w) => same.push(w) } });
    assert.deepEqual(same, []);
  });

  test('createModel: transformers-style random weights from a config, seeded', () => {
    const a = createModel(base, { seed: 3 });
    const b = createModel(base, { seed: 3 });
    const c = createModel(base, { seed: 4 });
    const w = (m: typeof a) => m.stateDict().get('transformer.h.0.attn.c_attn.weight')!.toNumbers();
    assert.deepEqual(w(a), w(b));
    assert.notDeepEqual(w(a), w(c));
    const sd = a.stateDict();
    assert.ok(
      sd
        .get('transformer.h.0.attn.c_attn.bias')!
        .toNumbers()
        .every((v) => v === 0),
    );
    assert.ok(
      sd
        .get('transformer.ln_f.weight')!
        .toNumbers()
        .every((v) => v === 1),
    );
    const proj = sd.get('transformer.h.1.mlp.c_proj.weight')!.toNumbers();
    const std = Math.sqrt(proj.reduce((s, v) => s + v * v, 0) / proj.length);
    assert.ok(std > 0.007 && std < 0.013, `c_proj std ${std} ≈ 0.02/√(2·2)`);
    assert.ok(a.parameters().every((p) => p.requiresGrad));
  });
});
