// The composite attention (src/ops/composite/attention.ts) against the fused kernels: js in f64 with
// tight tolerances and native in f32, forward (out, lse) and backward (dq, dk, dv), for every mask
// kind, GQA, strided inputs, rows with no visible key and dropout; and a check that it is built from
// primitive kernels only and never reads back to the host.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AttentionOpts, Backend, View } from '../../src/backends/backend.js';
import { JsBackend } from '../../src/backends/js/index.js';
import { getBackend } from '../../src/backends/registry.js';
import * as composite from '../../src/ops/composite/attention.js';
import type { DType } from '../../src/backends/dtype.js';
import {
  type AttnCase,
  type AttnImpl,
  BASE_CASE,
  CASES,
  attnInputs,
  attnOpts,
  runAttention,
  worstExcess,
} from '../helpers/attention.js';
import { nativeSkip } from '../helpers/backends.js';

const compositeOn = (b: Backend): AttnImpl => ({
  attention: (out, lse, q, k, v, o) => composite.attention(b, out, lse, q, k, v, o),
  attentionBackward: (dq, dk, dv, dout, q, k, v, out, lse, o) =>
    composite.attentionBackward(b, dq, dk, dv, dout, q, k, v, out, lse, o),
});

function compare(backend: Backend, dtype: DType, c: AttnCase, atol: number, rtol: number): void {
  const x = attnInputs(backend, dtype, c);
  const opts = attnOpts(c, x.keyMask);
  const want = runAttention(backend, backend, dtype, x, opts);
  const got = runAttention(compositeOn(backend), backend, dtype, x, opts);
  for (const key of ['out', 'lse', 'dq', 'dk', 'dv'] as const) {
    const e = worstExcess(got[key], want[key], atol, rtol);
    assert.ok(
      e.excess <= 0,
      `${key} ${JSON.stringify(c)} [${backend.name} ${dtype}]: element ${e.i} composite ${got[key][e.i]} kernel ${want[key][e.i]}`,
    );
  }
  if (c.mask) assert.equal(got.lse[0], -Infinity, 'a row with no visible key has lse −∞');
  for (const t of x.owners) t.dispose();
}

describe('composite attention', () => {
  test('equals the js kernel in f64 for every case (atol 1e-12, rtol 1e-10)', () => {
    const js = getBackend('js');
    for (const c of CASES) compare(js, 'f64', { ...BASE_CASE, ...c }, 1e-12, 1e-10);
  });

  test('equals the native kernel in f32 for every case (atol 1e-5, rtol 1e-4)', { skip: nativeSkip() }, () => {
    const nat = getBackend('native');
    const larger: Partial<AttnCase>[] = [
      { b: 1, tq: 130, tk: 130, hq: 2, hkv: 1, d: 16, mask: true, p: 0.1 },
      { b: 3, tq: 40, tk: 40, hq: 6, hkv: 2, d: 32, causal: true, window: 17, p: 0.2 },
    ];
    for (const c of [...CASES, ...larger]) compare(nat, 'f32', { ...BASE_CASE, ...c }, 1e-5, 1e-4);
  });

  test('no key at all (Tk = 0): output 0, lse −∞, gradients 0', () => {
    const js = getBackend('js');
    const c = { ...BASE_CASE, tk: 0, p: 0.2 };
    const x = attnInputs(js, 'f64', c);
    const r = runAttention(compositeOn(js), js, 'f64', x, attnOpts(c, null));
    assert.ok(r.out.every((v) => v === 0));
    assert.ok(r.lse.every((v) => v === -Infinity));
    assert.ok(r.dq.every((v) => v === 0));
    assert.deepEqual(r, runAttention(js, js, 'f64', x, attnOpts(c, null)));
  });

  test('a different dropout seed is caught (negative control)', () => {
    const js = getBackend('js');
    const c = { ...BASE_CASE, p: 0.3 };
    const x = attnInputs(js, 'f64', c);
    const want = runAttention(js, js, 'f64', x, attnOpts(c, null, 11));
    const got = runAttention(compositeOn(js), js, 'f64', x, attnOpts(c, null, 12));
    assert.ok(worstExcess(got.out, want.out, 1e-12, 1e-10).excess > 0);
  });

  test('uses primitive kernels only and reads nothing back', () => {
    const inner = new JsBackend();
    const used = new Set<string>();
    const fused = ['attention', 'attentionBackward', 'softmax', 'softmaxBackward', 'dropout', 'download'];
    const spy = new Proxy(inner, {
      get(target, prop, receiver) {
        const value = Reflect.get(target, prop, receiver) as unknown;
        if (typeof value !== 'function' || typeof prop !== 'string') return value;
        return (...args: unknown[]) => {
          if (fused.includes(prop)) throw new Error(`composite called ${prop}`);
          used.add(prop);
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const c = { ...BASE_CASE, causal: true, mask: true, p: 0.3 };
    const x = attnInputs(inner, 'f64', c);
    const opts: AttentionOpts = attnOpts(c, x.keyMask);
    const out = (shape: number[]): View => {
      const n = shape.reduce((a, b) => a * b, 1);
      return {
        buf: inner.alloc('f64', n),
        dtype: 'f64',
        offset: 0,
        shape,
        strides: shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1)),
      };
    };
    const [o, l] = [out([c.b, c.tq, c.hq, c.d]), out([c.b, c.hq, c.tq])];
    const [dq, dk, dv] = [out([c.b, c.tq, c.hq, c.d]), out([c.b, c.tk, c.hkv, c.d]), out([c.b, c.tk, c.hkv, c.d])];
    const before = inner.memory().allocated;
    composite.attention(spy, o, l, x.q, x.k, x.v, opts);
    composite.attentionBackward(spy, dq, dk, dv, x.dout, x.q, x.k, x.v, o, l, opts);
    assert.equal(inner.memory().allocated, before, 'every scratch buffer is freed');
    assert.ok(used.has('matmul') && used.has('upload'), [...used].join(', '));
  });
});
