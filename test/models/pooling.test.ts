// Index computations that models make on the device instead of reading ids back: the classifier's last
// non-padding position (transformers 5's rule: 0 for an all-padding row; the last position without a
// pad id, an error for batches > 1), pooling at a device index (gradients reach the picked rows only),
// and RoBERTa's padding-aware position ids against create_position_ids_from_input_ids on the host.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import { noGrad } from '../../src/autograd/graph.js';
import type { Backend } from '../../src/backends/backend.js';
import { getBackend, nativeAvailable } from '../../src/backends/registry.js';
import { loadModel } from '../../src/models/auto.js';
import { lastNonPadIndex, poolAt } from '../../src/models/common.js';
import * as ops from '../../src/ops/index.js';
import { tensor } from '../../src/tensor/creation.js';
import { caseDir } from './fixtures.js';

const backends: [string, Backend][] = [['js', getBackend('js')]];
if (nativeAvailable()) backends.push(['native', getBackend('native')]);

/** transformers' create_position_ids_from_input_ids, on host arrays. */
function robertaPositions(ids: number[][], pad: number): number[][] {
  return ids.map((row) => {
    let count = 0;
    return row.map((id) => (id === pad ? pad : pad + ++count));
  });
}

describe('on-device indices', () => {
  for (const [name, backend] of backends) {
    test(`${name}: lastNonPadIndex is the rightmost non-pad position, 0 for all padding`, () => {
      const ids = tensor(
        [
          [5, 0, 6, 0],
          [0, 0, 0, 0],
          [7, 8, 9, 10],
          [0, 3, 0, 0],
        ],
        { dtype: 'i32', backend },
      );
      const index = lastNonPadIndex(ids, 0, 'M');
      assert.equal(index.dtype, 'i32');
      assert.deepEqual([...(index.toArray() as Int32Array)], [2, 0, 3, 1]);
      const one = tensor([[4, 4, 4]], { dtype: 'i32', backend });
      assert.deepEqual([...(lastNonPadIndex(one, null, 'M').toArray() as Int32Array)], [2]);
      assert.throws(() => lastNonPadIndex(ids, null, 'M'), /\[M\] Cannot handle batch sizes > 1 if no padding token/);
    });

    test(`${name}: poolAt picks row b at index[b]; the gradient reaches those rows only`, () => {
      const hidden = tensor(
        Float32Array.from({ length: 3 * 4 * 2 }, (_, i) => i),
        {
          shape: [3, 4, 2],
          backend,
          requiresGrad: true,
        },
      );
      const index = tensor(Int32Array.from([2, 0, 3]), { dtype: 'i32', backend });
      const pooled = poolAt(hidden, index);
      assert.deepEqual([...(pooled.toArray() as Float32Array)], [4, 5, 8, 9, 22, 23]);
      backward(ops.sum(pooled));
      const g = [...(hidden.grad!.toArray() as Float32Array)];
      const want = new Array<number>(24).fill(0);
      for (const at of [4, 5, 8, 9, 22, 23]) want[at] = 1;
      assert.deepEqual(g, want);
    });

    test(`${name}: RoBERTa's position ids equal create_position_ids_from_input_ids`, () => {
      const model = loadModel(caseDir('roberta-seqcls'), { backend }).eval();
      const pad = model.config['pad_token_id'] as number;
      const rows = [
        [0, 31, 7, pad, 9, pad, pad],
        [0, 5, 6, 7, 8, 9, 2],
        [pad, pad, 4, 4, 4, pad, 2],
      ];
      const ids = tensor(rows, { dtype: 'i32', backend });
      const run = (positionIds?: number[][]) =>
        noGrad(() =>
          model
            .forward({
              inputIds: ids,
              ...(positionIds ? { positionIds: tensor(positionIds, { dtype: 'i32', backend }) } : {}),
            })
            .toArray(),
        );
      const own = run();
      assert.deepEqual(own, run(robertaPositions(rows, pad)));
      // Negative control: positions that ignore the padding give other logits.
      const naive = rows.map((r) => r.map((_, j) => pad + 1 + j));
      assert.notDeepEqual(own, run(naive));
      model.dispose();
    });
  }
});
