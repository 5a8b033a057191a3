// Tensor.data(): toArray() as a Promise, over Backend.downloadAsync when the backend has it (else
// download, called at once); the read is ordered at the call, so the tensor may be disposed right after;
// a disposed tensor gives a rejected Promise, not a throw; and the documented pattern with scope().

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Backend, View } from '../../src/backends/backend.js';
import { JsBackend } from '../../src/backends/js/index.js';
import * as ops from '../../src/ops/index.js';
import { tensor } from '../../src/tensor/creation.js';
import type { HostArray } from '../../src/backends/dtype.js';
import { DisposedError } from '../../src/tensor/errors.js';
import { scope } from '../../src/tensor/scope.js';

/** A js backend whose downloadAsync copies at the call and resolves on a later turn of the event loop. */
function asyncBackend(): { backend: Backend; calls: string[] } {
  const backend = new JsBackend() as JsBackend & { downloadAsync(v: View): Promise<HostArray> };
  const calls: string[] = [];
  const download = backend.download.bind(backend);
  backend.download = (v: View) => (calls.push('download'), download(v));
  backend.downloadAsync = (v: View) => {
    calls.push('downloadAsync');
    const host = download(v);
    return new Promise((resolve) => setTimeout(() => resolve(host), 5));
  };
  return { backend, calls };
}

describe('Tensor.data()', () => {
  test('resolves the elements of a strided view, as toArray() returns them (download called at once)', async () => {
    const backend = new JsBackend();
    const t = ops.transpose(
      tensor(
        [
          [1, 2, 3],
          [4, 5, 6],
        ],
        { backend },
      ),
    );
    const read = t.data();
    t.dispose(); // the read was made at the call
    assert.deepEqual([...((await read) as Float32Array)], [1, 4, 2, 5, 3, 6]);
  });

  test("uses the backend's downloadAsync; the event loop runs before it resolves", async () => {
    const { backend, calls } = asyncBackend();
    const t = tensor(Int32Array.from([7, 8]), { dtype: 'i32', backend });
    let ticked = false;
    setImmediate(() => (ticked = true));
    const host = await t.data();
    assert.deepEqual([...(host as Int32Array)], [7, 8]);
    assert.deepEqual(calls, ['downloadAsync']);
    assert.ok(ticked, 'other callbacks ran while the read was pending');
  });

  test('a disposed tensor gives a rejected Promise naming the read', async () => {
    const t = tensor([1], { backend: new JsBackend() });
    t.dispose();
    const read = t.data(); // does not throw
    await assert.rejects(read, (e: Error) => e instanceof DisposedError && /\[data\]/.test(e.message));
  });

  test('the pattern with scope(): the scope returns the tensor, data() outside it, then dispose', async () => {
    const backend = new JsBackend();
    const x = tensor([1, 2, 3], { backend });
    assert.throws(() => scope(() => ops.mulScalar(x, 2).data()), /scope\(\) only bounds synchronous work/);
    const y = scope(() => ops.addScalar(ops.mulScalar(x, 2), 1));
    const read = y.data();
    y.dispose();
    assert.deepEqual([...((await read) as Float32Array)], [3, 5, 7]);
    x.dispose();
    assert.equal(backend.memory().allocated, 0, 'nothing left behind');
  });
});
