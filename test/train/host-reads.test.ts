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
import { train } from '../../src/train/trainer.js';
import { countingBackend } from '../helpers/counting-backend.js';
import { FIXTURES, fixtureModel, lmText, quietSink, readJsonLines, runConfig, scratch } from './helpers.js';

const { dir: root, cleanup } = scratch('host-reads');
after(() => cleanup());

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

  test('the trainer reads back only at logging steps and before checkpoints', async () => {
    const gpt2 = fixtureModel(root, 'gpt2-lm');
    const downloads: number[] = [];
    let patched: { backend: Backend; own: boolean } | null = null;
    let n = 0;
    try {
      const r = await train({
        config: runConfig({
          model: gpt2,
          train_file: lmText(join(root, 'lm.txt')),
          output_dir: join(root, 'out'),
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
          if (!patched) {
            const b = run.backend;
            const own = Object.prototype.hasOwnProperty.call(b, 'download');
            const download = b.download.bind(b);
            b.download = (v) => (n++, download(v));
            patched = { backend: b, own };
          } else downloads[step] = n;
          n = 0;
        },
      });
      assert.equal(r.status, 'completed', r.message);
    } finally {
      const p = patched as { backend: Backend; own: boolean } | null;
      if (p && !p.own) delete (p.backend as Partial<Backend>).download;
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
    const logged = readJsonLines(join(root, 'out', 'metrics.jsonl')).filter((x) => x['type'] === 'train');
    assert.deepEqual(
      logged.map((x) => x['step']),
      [4, 8, 10],
    );
    assert.ok(logged.every((x) => typeof x['grad_norm'] === 'number' && Number.isFinite(x['loss'])));
  });
});
