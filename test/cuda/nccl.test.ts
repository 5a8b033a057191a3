// NCCL on one GPU: the cuda backend's communicator joined as a group of one (every collective of the
// NcclCollective through NCCL: host arrays, a device view, uneven all-gather, barrier), and
// `vera train --nproc 1 --device cuda` — one rank started as torchrun starts it, its gradients
// all-reduced by NCCL every step — ending with the adapter of `vera train --device cuda`, byte for
// byte. Skipped without a GPU; several GPUs are needed for more ranks.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { tensor } from '../../src/tensor/creation.js';
import { NcclCollective } from '../../src/train/distributed/nccl.js';
import { cudaOrSkip } from '../helpers/cuda.js';
import { BIN, fixtureModel, keywordCsv, scratch } from '../train/helpers.js';

const { backend, skip } = cudaOrSkip();

describe('NCCL on one GPU', () => {
  let root: string;
  let cleanup: () => void;
  before(() => ({ dir: root, cleanup } = scratch('nccl')));
  after(() => cleanup());

  test('a group of one: every collective through NCCL keeps the data', { skip }, () => {
    const c = backend!.communicator!;
    const g = new NcclCollective(backend!, c.uniqueId(), 0, 1);
    try {
      assert.match(g.library, /^NCCL 2\.\d+\.\d+ \(/);
      const f = new Float32Array([1.5, -2, 3e-8]);
      g.allReduce(f, 'sum');
      assert.deepEqual(Array.from(f), Array.from(new Float32Array([1.5, -2, 3e-8])));
      const d = new Float64Array([0.1, 7]);
      g.allReduce(d, 'max');
      assert.deepEqual(Array.from(d), [0.1, 7]);
      const b = new Uint8Array([9, 8, 7]);
      g.broadcast(b, 0);
      assert.deepEqual(Array.from(b), [9, 8, 7]);
      assert.deepEqual(
        g.allGather(new Uint8Array([4, 5])).map((x) => Array.from(x)),
        [[4, 5]],
      );
      g.barrier();
      const t = tensor([1, 2, 3, 4], { backend: backend! });
      g.allReduceViewSum(backend!, t.view('nccl test'));
      assert.deepEqual(t.toNumbers(), [1, 2, 3, 4]);
      t.dispose();
      assert.throws(() => g.allReduce(f, 'prod' as 'sum'), /op must be 'sum', 'max' or 'min'/);
    } finally {
      g.finalize();
    }
  });

  test('vera train --nproc 1 --device cuda: the adapter of vera train --device cuda, byte for byte', { skip }, () => {
    const model = fixtureModel(root, 'gpt2-lm');
    const data = keywordCsv(join(root, 'keywords.csv'));
    const args = [
      ...['train', '--model', model, '--train_file', data, '--method', 'vera', '--r', '16', '--device', 'cuda'],
      ...['--lr', '0.01', '--head_lr', '0.01', '--max_steps', '60', '--save_steps', '30', '--batch_size', '8'],
    ];
    const run = (out: string, extra: string[]) => {
      const r = spawnSync(process.execPath, [BIN, ...args, '--output_dir', out, ...extra], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      if (extra.length) assert.match(r.stderr, /1 data-parallel rank takes each global batch of 8 \(NCCL\)/);
      return readFileSync(join(out, 'adapter', 'adapter_model.safetensors'));
    };
    const alone = run(join(root, 'alone'), []);
    const ranked = run(join(root, 'nccl'), ['--nproc', '1']);
    assert.ok(alone.equals(ranked), 'the adapters differ');
  });
});
