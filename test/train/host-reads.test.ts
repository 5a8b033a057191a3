// No device→host reads in a training step: a VeRA step (forward, backward, clip, AdamW, zeroGrad)
// downloads nothing, its optimizer work is a fixed number of launches however many layers carry λ
// vectors, and the trainer reads back only at its read points (logging steps, evaluations, checkpoints).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { getPeftModel, veraConfig } from '../../src/adapters/index.js';
import { backward } from '../../src/autograd/backward.js';
import type { Backend } from '../../src/backends/backend.js';
import { getBackend } from '../../src/backends/registry.js';
import { createModel } from '../../src/models/auto.js';
import * as ops from '../../src/ops/index.js';
import { AdamW } from '../../src/optim/adamw.js';
import { clipGradNorm } from '../../src/optim/clip.js';
import { tensor } from '../../src/tensor/creation.js';
import { scope } from '../../src/tensor/scope.js';
import { collate } from '../../src/data/index.js';
import { evaluate, taskMetrics } from '../../src/train/evaluate.js';
import { modelInputs, summedLoss } from '../../src/train/heads.js';
import { setUp } from '../../src/train/setup.js';
import { train } from '../../src/train/trainer.js';
import { noGrad } from '../../src/autograd/graph.js';
import { countingBackend } from '../helpers/counting.js';
import { FIXTURES, fixtureModel, keywordCsv, lmText, quietSink, readJsonLines, runConfig, scratch } from './helpers.js';

const { dir: root, cleanup } = scratch('host-reads');
after(() => cleanup());

/** Counts b.download calls until restore(); `taken()` returns the count since the last call. */
function watchDownloads(b: Backend): { taken(): number; restore(): void } {
  const own = Object.prototype.hasOwnProperty.call(b, 'download');
  const download = b.download.bind(b);
  let n = 0;
  b.download = (v) => (n++, download(v));
  return {
    taken: () => {
      const k = n;
      n = 0;
      return k;
    },
    restore: () => {
      if (own) b.download = download;
      else delete (b as Partial<Backend>).download;
    },
  };
}

describe('host reads in training', () => {
  test('a VeRA step downloads nothing and its optimizer launches do not grow with the layers', () => {
    const config = JSON.parse(readFileSync(join(FIXTURES, 'gpt2-lm', 'config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    const perLayer = (layers: number) => {
      const c = countingBackend(getBackend('js'));
      const model = createModel({ ...config, n_layer: layers }, { backend: c.backend, seed: 1 });
      const peft = getPeftModel(model, veraConfig({ r: 8, target_modules: ['c_attn', 'c_proj', 'c_fc'] }));
      const trainable = peft.trainableParameters().map(([, t]) => t);
      const opt = new AdamW(trainable, { lr: 1e-2 });
      const ids = tensor([[5, 17, 42, 8, 99, 3, 64, 12]], { dtype: 'i32', backend: c.backend });
      const counts = { downloads: 0, step: 0, clip: 0, zeroGrad: 0 };
      for (let i = 0; i < 3; i++) {
        c.reset();
        scope(() => {
          const logits = peft.forward({ inputIds: ops.slice(ids, 1, 0, -1) });
          backward(ops.crossEntropy(logits, ops.slice(ids, 1, 1)));
          let mark = c.launches();
          clipGradNorm(trainable, 1e-3);
          counts.clip = c.launches() - mark;
          mark = c.launches();
          opt.step();
          counts.step = c.launches() - mark;
          mark = c.launches();
          opt.zeroGrad();
          counts.zeroGrad = c.launches() - mark;
        });
        counts.downloads += c.count('download');
      }
      return { ...counts, tensors: trainable.length };
    };
    const two = perLayer(2);
    const four = perLayer(4);
    assert.deepEqual([two.tensors, four.tensors], [16, 32], 'λ_b and λ_d on 4 targets a layer');
    assert.equal(two.downloads, 0, 'no download in 3 steps');
    assert.equal(four.downloads, 0);
    assert.deepEqual([two.step, four.step], [1, 1], 'one adamw launch for the one group');
    assert.equal(two.zeroGrad, 0);
    assert.equal(four.clip, two.clip, `clip launches: ${two.clip} for 16 tensors, ${four.clip} for 32`);
  });

  test('an evaluation reads back once, and gives what reading every batch gave', () => {
    const run = setUp(
      runConfig({
        model: fixtureModel(root, 'bert-seqcls'),
        train_file: keywordCsv(join(root, 'kw.csv'), 60),
        output_dir: join(root, 'eval'),
        method: 'vera',
        r: 8,
        validation_fraction: 0.5,
      }),
      () => {},
    );
    const ds = run.validation!;
    const o = {
      task: run.task,
      batchSize: 7, // 30 examples: a short last batch
      padId: run.padId,
      paddingSide: 'right' as const,
      backend: run.backend,
      modelType: run.model.modelType,
      numLabels: 2,
    };
    const b = run.backend;
    const watch = watchDownloads(b);
    let ev: ReturnType<typeof evaluate>;
    try {
      ev = evaluate(run.forward, run.root, ds, o);
    } finally {
      watch.restore();
    }
    assert.equal(watch.taken(), 1, 'one read per evaluation');
    // The reference: a read per batch, as the loop did before.
    let lossSum = 0;
    const preds: number[] = [];
    const gold: number[] = [];
    run.root.eval();
    noGrad(() => {
      for (let start = 0; start < ds.length; start += o.batchSize) {
        const examples = Array.from({ length: Math.min(o.batchSize, ds.length - start) }, (_, i) => ds.get(start + i));
        scope(() => {
          const batch = collate(examples, { kind: o.task, padId: o.padId, paddingSide: 'right', backend: b });
          const logits = run.forward(modelInputs(batch, o.modelType));
          lossSum += summedLoss(logits, batch.labels, o.task).item();
          preds.push(...ops.argmax(logits).toNumbers());
          gold.push(...examples.map((ex) => ex.label!));
        });
      }
    });
    run.root.train();
    assert.equal(ev.examples, 30);
    assert.equal(ev.loss, lossSum / ds.length);
    assert.deepEqual(ev.metrics, { loss: ev.loss, ...taskMetrics(o.task, preds, gold, ev.loss, 2) });
  });

  for (const maxGradNorm of [1, 0]) {
    test(`the trainer reads back only at logging steps and before checkpoints (max_grad_norm ${maxGradNorm})`, async () => {
      const gpt2 = fixtureModel(root, 'gpt2-lm');
      const downloads: number[] = [];
      const watch: { w: ReturnType<typeof watchDownloads> | null } = { w: null };
      try {
        const r = await train({
          config: runConfig({
            model: gpt2,
            train_file: lmText(join(root, 'lm.txt')),
            output_dir: join(root, `out-${maxGradNorm}`),
            max_grad_norm: maxGradNorm,
            method: 'vera',
            r: 8,
            block_size: 16,
            batch_size: 2,
            gradient_accumulation_steps: 2,
            max_steps: 10,
            logging_steps: 4,
            save_steps: 100,
          }),
          sink: quietSink(),
          onStep: (step, run) => {
            if (watch.w) downloads[step] = watch.w.taken();
            else watch.w = watchDownloads(run.backend); // from the end of step 1 on
          },
        });
        assert.equal(r.status, 'completed', r.message);
      } finally {
        watch.w?.restore();
      }
      // downloads[s]: from the end of step s − 1 to the end of step s. Steps 4 and 8 log, step 10 is the
      // last (and checkpoints); what follows step 4 and step 8 reads nothing more.
      const reading = downloads.flatMap((d, s) => (d > 0 ? [s] : []));
      assert.deepEqual(reading, [4, 8, 10], `downloads per step: ${JSON.stringify(downloads)}`);
      assert.deepEqual(
        downloads.filter((_, s) => s === 4 || s === 8),
        [1, 1],
        'one read for the losses and norms of the window',
      );
      const logged = readJsonLines(join(root, `out-${maxGradNorm}`, 'metrics.jsonl')).filter(
        (x) => x['type'] === 'train',
      );
      assert.deepEqual(
        logged.map((x) => x['step']),
        [4, 8, 10],
      );
      // Without clipping the norm is computed at the logging steps only, and still logged.
      assert.ok(logged.every((x) => typeof x['grad_norm'] === 'number' && Number.isFinite(x['loss'])));
    });
  }
});
