// Ops that return indices or move data between backends: argmax, topk and toBackend.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import { getBackend } from '../../src/backends/registry.js';
import * as ops from '../../src/ops/index.js';
import { tensor } from '../../src/tensor/creation.js';
import { testBackends } from '../helpers/backends.js';

for (const tb of testBackends()) {
  describe(`index ops on ${tb.name}`, () => {
    const x = () =>
      tensor([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8], { shape: [2, 6], dtype: tb.dtype, backend: tb.backend });

    test('argmax() returns the first maximum of each row as i32', () => {
      const i = ops.argmax(x());
      assert.equal(i.dtype, 'i32');
      assert.deepEqual(i.toNumbers(), [5, 5]);
      assert.deepEqual(ops.argmax(ops.transpose(x())).toNumbers(), [0, 1, 1, 1, 0, 0]);
    });

    test('topk() returns sorted values with indices, lower index first on ties', () => {
      const { values, indices } = ops.topk(x(), 3);
      assert.deepEqual(values.toNumbers(), [9, 5, 4, 8, 6, 5]);
      assert.deepEqual(indices.toNumbers(), [5, 4, 2, 5, 1, 2]);
    });
  });
}

describe('toBackend', () => {
  test('copies between backends and passes gradients back', () => {
    const js = getBackend('js');
    const other = testBackends().at(-1)!.backend;
    const a = tensor([1, 2, 3], { backend: js, requiresGrad: true });
    const b = ops.toBackend(a, other);
    assert.equal(b.backend, other);
    backward(ops.sum(ops.mulScalar(b, 2)));
    assert.equal(a.grad!.backend, js);
    assert.deepEqual(a.grad!.toNumbers(), [2, 2, 2]);
  });
});
