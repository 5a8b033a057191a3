// The pretraining loop on a tiny GPT-2 (js backend, deterministic): the schedule, that loss falls on a
// learnable stream, that an interrupted run resumed from its checkpoint ends bit-identical to an
// uninterrupted one, and that the export loads back with loadModel (F32 exactly, F16 closely).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { noGrad } from '../../src/autograd/graph.js';
import { getBackend } from '../../src/backends/registry.js';
import { loadModel } from '../../src/models/auto.js';
import type { PreTrainedModel } from '../../src/models/pretrained.js';
import { tensor } from '../../src/tensor/creation.js';
import {
  DEFAULT_TRAIN,
  type ModelShape,
  type TrainOptions,
  exportModel,
  lrAt,
  pretrain,
} from '../../src/pretrain/train.js';

const backend = getBackend('js');
const root = mkdtempSync(join(tmpdir(), 'vera-pretrain-train-'));
after(() => rmSync(root, { recursive: true, force: true }));

const shape: ModelShape = {
  nLayer: 2,
  nEmbd: 32,
  nHead: 2,
  nPositions: 16,
  vocabSize: 48,
  eosTokenId: 47,
  dropout: 0.1,
};
const opts: TrainOptions = {
  ...DEFAULT_TRAIN,
  steps: 30,
  batch: 4,
  lr: 1e-2,
  minLr: 1e-3,
  warmup: 5,
  evalEvery: 30,
  evalBlocks: 4,
  logEvery: 1000,
  checkpointEverySec: 1e9,
  threads: 1,
};
// A learnable stream: counting modulo 40 with an end-of-text token every 37 tokens.
const stream = Uint16Array.from({ length: 2000 }, (_, i) => (i % 37 === 36 ? 47 : i % 40));
const valid = Uint16Array.from({ length: 200 }, (_, i) => ((i + 13) % 37 === 36 ? 47 : (i + 13) % 40));

function run(ckptDir: string, maxStepsNow?: number) {
  return pretrain({
    train: stream,
    valid,
    shape,
    opts,
    backend,
    ckptDir,
    log: () => {},
    ...(maxStepsNow === undefined ? {} : { maxStepsNow }),
  });
}

function logits(model: PreTrainedModel): Float32Array {
  return noGrad(() => {
    const ids = tensor([[1, 2, 3, 4, 5, 6]], { dtype: 'i32', backend });
    const out = model.forward({ inputIds: ids });
    const a = out.toArray() as Float32Array;
    out.dispose();
    ids.dispose();
    return a;
  });
}

describe('pretrain', () => {
  test('lrAt warms up linearly, then decays by a cosine to minLr', () => {
    const o = { lr: 1, minLr: 0.1, warmup: 10, steps: 110 };
    assert.equal(lrAt(0, o), 0.1);
    assert.equal(lrAt(9, o), 1);
    assert.ok(Math.abs(lrAt(60, o) - 0.55) < 1e-12);
    assert.ok(Math.abs(lrAt(110, o) - 0.1) < 1e-12);
  });

  test('lowers the loss, and a resumed run matches an uninterrupted one exactly', () => {
    const straight = run(join(root, 'a'));
    const evals = straight.state.evals;
    assert.equal(evals[0]!.step, 0);
    assert.ok(evals.at(-1)!.validLoss < evals[0]!.validLoss - 0.5, JSON.stringify(evals));

    const first = run(join(root, 'b'), 12);
    assert.equal(first.state.step, 12);
    first.model.dispose();
    const resumed = run(join(root, 'b'));
    assert.equal(resumed.state.step, 30);
    assert.deepEqual(logits(resumed.model), logits(straight.model));

    const f32 = join(root, 'f32');
    exportModel(straight.model, f32, 'f32');
    const reloaded = loadModel(f32, { backend });
    assert.deepEqual(logits(reloaded), logits(straight.model));
    const f16 = join(root, 'f16');
    exportModel(straight.model, f16, 'f16');
    const half = loadModel(f16, { backend });
    const [a, b] = [logits(half), logits(straight.model)];
    assert.ok(a.every((x, i) => Math.abs(x - b[i]!) < 0.05));
    for (const m of [straight.model, resumed.model, reloaded, half]) m.dispose();
  });
});
