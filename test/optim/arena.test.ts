// The optimizer's flat arena: parameters, gradients and moments are views of four buffers; backward
// writes gradients into them in place (accumulating across calls, bit-equal to the unpacked path);
// AdamW is one launch per group and equals per-tensor updates bit for bit; zeroGrad launches nothing;
// a parameter can be in one optimizer once; the state survives a safetensors round trip.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { backward, setGradSlot } from '../../src/autograd/backward.js';
import { checkpoint } from '../../src/autograd/checkpoint.js';
import { JsBackend } from '../../src/backends/js/index.js';
import { SafetensorsReader, writeSafetensors } from '../../src/io/safetensors.js';
import * as ops from '../../src/ops/index.js';
import { AdamW } from '../../src/optim/adamw.js';
import { zeros, tensor } from '../../src/tensor/creation.js';
import type { DType } from '../../src/backends/dtype.js';
import { Generator } from '../../src/tensor/random.js';
import { scope } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { Backend } from '../../src/backends/backend.js';
import { testBackends } from '../helpers/backends.js';
import { countingBackend } from '../helpers/counting.js';

const tmp = mkdtempSync(join(tmpdir(), 'vera-arena-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Seeded trainable tensors of the given shapes. */
function params(backend: Backend, dtype: DType, shapes: number[][], seed = 1): Tensor[] {
  const g = new Generator(seed);
  return shapes.map((shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    return tensor(Array.from(g.uniform(n, -1, 1)), { shape, dtype, backend, requiresGrad: true });
  });
}

/** Copies that no optimizer holds (the unpacked reference path). */
function copies(ps: readonly Tensor[]): Tensor[] {
  return ps.map((p) => tensor(p.toArray(), { shape: p.shape, dtype: p.dtype, backend: p.backend, requiresGrad: true }));
}

/** A loss that gives every parameter a different gradient: Σ_i (i+1)·Σ tanh(p_i)². */
function lossOf(ps: readonly Tensor[], k = 1): Tensor {
  return ps.map((p, i) => ops.mulScalar(ops.sum(ops.square(ops.tanh(p))), k * (i + 1))).reduce((a, b) => ops.add(a, b));
}

const SHAPES = [[3], [2, 4], [5], [1], [3, 2]];

describe('parameter arena', () => {
  test('parameters, gradients and moments are views of one buffer each; values move in unchanged', () => {
    const backend = new JsBackend();
    const ps = params(backend, 'f64', SHAPES);
    const before = ps.map((p) => p.toNumbers());
    const loose = tensor([1, 2], { dtype: 'f64', backend, requiresGrad: true });
    const own = loose.storage;
    const opt = new AdamW(ps);
    const arena = opt.arena!;
    assert.deepEqual(arena.offsets, [0, 3, 11, 16, 17, 23]);
    ps.forEach((p, i) => {
      assert.equal(p.storage, ps[0]!.storage, `parameter ${i} shares the param buffer`);
      assert.equal(p.offset, arena.offsets[i]);
      assert.deepEqual(p.toNumbers(), before[i]);
    });
    assert.equal(loose.storage, own, 'a tensor outside the optimizer keeps its storage');
    scope(() => backward(ops.add(lossOf(ps), ops.sum(loose))));
    const gradStorage = ps[0]!.grad!.storage;
    assert.notEqual(gradStorage, ps[0]!.storage);
    ps.forEach((p, i) => {
      assert.equal(p.grad!.storage, gradStorage, `gradient ${i} is a view of the grad buffer`);
      assert.equal(p.grad!.offset, arena.offsets[i]);
    });
    assert.notEqual(loose.grad!.storage, gradStorage);
    // Writing the arena is writing the parameters.
    backend.fill(arena.span('param', 1, 3), 7);
    assert.deepEqual(ps[1]!.toNumbers(), new Array(8).fill(7));
    assert.deepEqual(ps[2]!.toNumbers(), new Array(5).fill(7));
    assert.deepEqual(ps[0]!.toNumbers(), before[0]);
    opt.step();
    const sd = opt.stateDict();
    assert.ok(sd.state.every((s) => s !== null && s.m.storage === sd.state[0]!.m.storage));
    assert.notEqual(sd.state[0]!.m.storage, sd.state[0]!.v.storage);
  });

  for (const tb of testBackends()) {
    test(`gradients accumulate in place and equal the unpacked path bit for bit (${tb.name})`, () => {
      const ps = params(tb.backend, tb.dtype, SHAPES, 2);
      const ref = copies(ps);
      const opt = new AdamW(ps);
      for (const set of [ps, ref]) {
        scope(() => backward(lossOf(set, 1)));
        scope(() => backward(lossOf(set, -0.5))); // a second micro-batch adds to the first
      }
      ps.forEach((p, i) => assert.deepEqual(p.grad!.toNumbers(), ref[i]!.grad!.toNumbers(), `gradient ${i}`));
      const slot = ps[0]!.grad;
      const c = countingBackend(tb.backend);
      // zeroGrad launches nothing; the next backward copies instead of adding to stale values.
      const counted = new AdamW(params(c.backend, tb.dtype, [[4]]));
      c.reset();
      counted.zeroGrad();
      assert.equal(c.launches(), 0);
      opt.zeroGrad();
      assert.ok(ps.every((p) => p.grad === null));
      for (const p of ref) {
        p.grad!.dispose();
        p.grad = null;
      }
      for (const set of [ps, ref]) scope(() => backward(lossOf(set, 3)));
      assert.equal(ps[0]!.grad, slot, 'the same slot handle, no new gradient tensor');
      ps.forEach((p, i) => assert.deepEqual(p.grad!.toNumbers(), ref[i]!.grad!.toNumbers(), `gradient ${i}`));
    });

    test(`one adamw launch per group, equal to per-tensor updates bit for bit (${tb.name})`, () => {
      const c = countingBackend(tb.backend);
      for (const n of [4, 40]) {
        const shapes = Array.from({ length: n }, (_, i) => [1 + (i % 5)]);
        const ps = params(c.backend, tb.dtype, shapes, n);
        const ref = copies(ps);
        const hp = [
          { lr: 0.1, weightDecay: 0.01 },
          { lr: 0.02, weightDecay: 0 },
        ];
        const half = n / 2;
        const opt = new AdamW([
          { params: ps.slice(0, half), ...hp[0] },
          { params: ps.slice(half), ...hp[1] },
        ]);
        const moments = ref.map((p) => [
          zeros(p.shape, { dtype: p.dtype, backend: p.backend }),
          zeros(p.shape, { dtype: p.dtype, backend: p.backend }),
        ]);
        for (let step = 1; step <= 3; step++) {
          for (const set of [ps, ref]) scope(() => backward(lossOf(set, step)));
          c.reset();
          opt.step();
          assert.equal(c.count('adamw'), 2, `${n} parameters in 2 groups`);
          assert.equal(c.launches(), 2);
          ref.forEach((p, i) => {
            const h = hp[i < half ? 0 : 1]!;
            const [m, v] = moments[i]!;
            p.backend.adamw!(p.view('t'), p.grad!.view('t'), m!.view('t'), v!.view('t'), {
              ...h,
              beta1: 0.9,
              beta2: 0.999,
              eps: 1e-8,
              step,
            });
            p.grad!.dispose();
            p.grad = null;
          });
          opt.zeroGrad();
        }
        ps.forEach((p, i) => assert.deepEqual(p.toNumbers(), ref[i]!.toNumbers(), `parameter ${i} of ${n}`));
        const sd = opt.stateDict();
        sd.state.forEach((s, i) => {
          assert.deepEqual(s!.m.toNumbers(), moments[i]![0]!.toNumbers(), `m ${i}`);
          assert.deepEqual(s!.v.toNumbers(), moments[i]![1]!.toNumbers(), `v ${i}`);
        });
        opt.dispose();
      }
    });
  }

  test("activation checkpointing: the recomputed block writes its parameters' gradients into the arena", () => {
    const backend = new JsBackend();
    const ps = params(backend, 'f64', [[4], [4]], 12);
    const ref = copies(ps);
    new AdamW(ps);
    const x = tensor([0.5, -1, 2, 0.25], { dtype: 'f64', backend, requiresGrad: true });
    const block = (w: Tensor[]) => (h: Tensor) => ops.tanh(ops.add(ops.mul(h, w[0]!), w[1]!));
    scope(() => backward(ops.sum(checkpoint(block(ps), [x], ps))));
    scope(() => backward(ops.sum(block(ref)(x))));
    ps.forEach((p, i) => {
      assert.equal(p.grad!.storage, ps[0]!.grad!.storage);
      assert.deepEqual(p.grad!.toNumbers(), ref[i]!.grad!.toNumbers());
    });
  });

  test('a parameter without a gradient splits its group into runs and keeps no state', () => {
    const c = countingBackend(new JsBackend());
    const [a, idle, b] = params(c.backend, 'f64', [[2], [3], [2]]);
    const kept = idle!.toNumbers();
    const opt = new AdamW([a!, idle!, b!], { lr: 0.1 });
    scope(() => backward(ops.add(ops.sum(a!), ops.sum(b!))));
    c.reset();
    opt.step();
    assert.equal(c.count('adamw'), 2, 'a, then b');
    assert.deepEqual(idle!.toNumbers(), kept, 'no weight decay on a parameter without a gradient');
    assert.deepEqual(
      opt.stateDict().state.map((s) => s !== null),
      [true, false, true],
    );
  });

  test('a gradient assigned by hand is taken into the arena (and freed, as zeroGrad would)', () => {
    const backend = new JsBackend();
    const [p] = params(backend, 'f64', [[3]]);
    const opt = new AdamW([p!], { lr: 0.1, weightDecay: 0 });
    const g = tensor([1, -1, 2], { dtype: 'f64', backend });
    p!.grad = g;
    const before = p!.toNumbers();
    opt.step();
    assert.ok(g.disposed);
    assert.equal(p!.grad!.storage, opt.arena!.spanTensor('grad', 0, 1).storage);
    assert.deepEqual(p!.grad!.toNumbers(), [1, -1, 2]);
    p!.toNumbers().forEach((v, i) => assert.ok(Math.abs(before[i]! - v - 0.1 * Math.sign([1, -1, 2][i]!)) < 1e-6));
  });

  test('a parameter can be in one optimizer once; one arena holds one dtype on one backend', () => {
    const backend = new JsBackend();
    const [a, b] = params(backend, 'f64', [[2], [2]]);
    assert.throws(() => new AdamW([a!, b!, a!]), /\[arena\] parameter 2 \(2\) is listed twice \(also as parameter 0\)/);
    assert.throws(() => new AdamW([{ params: [a!] }, { params: [b!, a!] }]), /listed twice/);
    const first = new AdamW([a!]);
    assert.throws(() => new AdamW([b!, a!]), /parameter 1 \(2\) already belongs to another optimizer/);
    assert.equal(b!.storage.numel, 2, 'a refused optimizer moves nothing');
    first.dispose();
    const second = new AdamW([b!, a!]);
    assert.equal(a!.storage, b!.storage);
    second.dispose();
    const f32 = tensor([1], { backend, requiresGrad: true });
    assert.throws(() => new AdamW([a!, f32]), /parameter 1 \(1\) is f32 on js, parameter 0 f64 on js/);
  });

  test('after dispose the parameters are ordinary tensors again; backward allocates their gradients', () => {
    const backend = new JsBackend();
    const ps = params(backend, 'f64', [[2], [3]]);
    const opt = new AdamW(ps);
    scope(() => backward(lossOf(ps)));
    opt.step();
    opt.zeroGrad();
    const values = ps.map((p) => p.toNumbers());
    opt.dispose();
    assert.throws(() => opt.step(), /arena was disposed/);
    assert.deepEqual(
      ps.map((p) => p.toNumbers()),
      values,
    );
    scope(() => backward(lossOf(ps)));
    assert.notEqual(ps[0]!.grad!.storage, ps[1]!.grad!.storage);
    assert.equal(ps[0]!.grad!.storage.numel, 2);
  });

  test('gradient slots: a handle disposed by its user is replaced over the same elements; bad slots and moves are refused', () => {
    const backend = new JsBackend();
    const ps = params(backend, 'f64', [[2], [3]], 4);
    const ref = copies(ps);
    new AdamW(ps);
    scope(() => backward(lossOf(ps)));
    const storage = ps[1]!.grad!.storage;
    ps[1]!.grad!.dispose(); // what module.dispose() or a user may do
    ps[1]!.grad = null;
    scope(() => backward(lossOf(ps)));
    scope(() => backward(lossOf(ref)));
    assert.equal(ps[1]!.grad!.storage, storage);
    assert.ok(!ps[1]!.grad!.disposed);
    assert.deepEqual(ps[1]!.grad!.toNumbers(), ref[1]!.grad!.toNumbers());
    const other = tensor([1, 2], { dtype: 'f64', backend, requiresGrad: true });
    assert.throws(
      () => setGradSlot(other, zeros([3], { dtype: 'f64', backend })),
      /\[backward\] A gradient slot must be a contiguous f64 view of the leaf's shape \(2\), got f64 \(3\)/,
    );
    assert.throws(
      () => other.relocate(ps[0]!.storage, 4),
      /\[relocate\] 2 elements from offset 4 do not fit a storage of 5/,
    );
    assert.throws(
      () => other.relocate(tensor([1, 2], { backend }).storage, 0),
      /\[relocate\] Tensor is f64 on js, the target storage f32 on js/,
    );
    other.dispose();
    assert.throws(() => other.relocate(ps[0]!.storage, 0), /\[relocate\] Tensor was disposed/);
  });

  test('the state written to safetensors and loaded into a new optimizer continues bit for bit', () => {
    const backend = new JsBackend();
    const shapes = [[3], [2, 2], [4], [2]];
    const a = params(backend, 'f64', shapes, 9);
    const groups = (ps: Tensor[]) => [
      { params: ps.slice(0, 2), lr: 0.05 },
      { params: ps.slice(2), lr: 0.01, weightDecay: 0 },
    ];
    const optA = new AdamW(groups(a));
    // The last parameter never gets a gradient: no state, before or after the round trip.
    const train = (opt: AdamW, ps: Tensor[], k: number) =>
      scope(() => {
        backward(lossOf(ps.slice(0, 3), k));
        opt.step();
        opt.zeroGrad();
      });
    for (let k = 1; k <= 3; k++) train(optA, a, k);
    const sd = optA.stateDict();
    const file = join(tmp, 'optimizer.safetensors');
    const moments = new Map<string, Tensor>();
    sd.state.forEach((s, i) => {
      if (!s) return;
      moments.set(`exp_avg/${i}`, s.m);
      moments.set(`exp_avg_sq/${i}`, s.v);
    });
    assert.equal(moments.size, 6);
    writeSafetensors(file, moments, { format: 'pt' });
    const b = copies(a);
    const optB = new AdamW(groups(b));
    const reader = SafetensorsReader.open(file);
    const have = new Set(reader.names());
    optB.loadStateDict({
      ...sd,
      state: shapes.map((_, i) =>
        have.has(`exp_avg/${i}`)
          ? {
              m: reader.tensor(`exp_avg/${i}`, { dtype: 'f64', backend }),
              v: reader.tensor(`exp_avg_sq/${i}`, { dtype: 'f64', backend }),
            }
          : null,
      ),
    });
    reader.close();
    assert.equal(optB.stateDict().state[3], null);
    for (let k = 4; k <= 6; k++) {
      train(optA, a, k);
      train(optB, b, k);
    }
    a.forEach((p, i) => assert.deepEqual(b[i]!.toNumbers(), p.toNumbers(), `parameter ${i}`));
    optA.stateDict().state.forEach((s, i) => {
      const t = optB.stateDict().state[i];
      assert.equal(t === null, s === null);
      if (s && t) assert.deepEqual(t.v.toNumbers(), s.v.toNumbers());
    });
  });
});
