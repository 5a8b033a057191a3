// Attention kernel inputs for tests that call Backend.attention / attentionBackward (or the composite
// with the same signature) directly: seeded q, k, v, dout and key mask of one case, laid out as the
// models lay them out (q, k, v as strided views of one fused projection, or k transposed in batch/time),
// and a runner that returns every output on the host.

import type { AttentionOpts, Backend, View } from '../../src/backends/backend.js';
import { tensor, zeros } from '../../src/tensor/creation.js';
import type { DType } from '../../src/backends/dtype.js';
import { Generator } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';

export interface AttnCase {
  b: number;
  tq: number;
  tk: number;
  hq: number;
  hkv: number;
  d: number;
  causal: boolean;
  window: number;
  /** Key padding with batch 0 fully padded (its rows see no key: out 0, lse −∞). */
  mask: boolean;
  /** q, k, v read in place from one [B, T, Hq + 2·Hkv, D] projection (needs tq = tk). */
  fused: boolean;
  /** Dropout probability; 0 = opts.dropout null. */
  p: number;
}

export const BASE_CASE: AttnCase = {
  b: 2,
  tq: 7,
  tk: 7,
  hq: 4,
  hkv: 2,
  d: 5,
  causal: false,
  window: 0,
  mask: false,
  fused: false,
  p: 0,
};

/** Every mask kind, GQA, strided inputs, Tq ≠ Tk, and dropout, on small sizes. */
export const CASES: Partial<AttnCase>[] = [
  {},
  { causal: true },
  { causal: true, window: 3 },
  { window: 2 },
  { mask: true },
  { causal: true, mask: true, hkv: 1 },
  { fused: true, causal: true },
  { tq: 3, tk: 7, causal: true },
  { tq: 7, tk: 3, causal: true }, // the first query rows see no key
  { hkv: 4 },
  { p: 0.3 },
  { p: 0.3, causal: true, window: 3, mask: true },
  { p: 0.5, fused: true, causal: true, hkv: 1 },
  { p: 0.2, tq: 3, tk: 7, causal: true },
];

export interface AttnInputs {
  q: View;
  k: View;
  v: View;
  dout: View;
  keyMask: View | null;
  /** Tensors that own the storage above (dispose when done). */
  owners: Tensor[];
}

function data(dtype: DType, n: number, seed: number): Float32Array | Float64Array {
  const u = new Generator(seed).uniform(n, -1.5, 1.5);
  return dtype === 'f64' ? Float64Array.from(u) : u;
}

const rowMajor = (shape: readonly number[]) => shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));

export function attnInputs(backend: Backend, dtype: DType, c: AttnCase, seed = 1): AttnInputs {
  const owners: Tensor[] = [];
  const own = (t: Tensor) => (owners.push(t), t.view('test'));
  const make = (shape: number[], s: number) =>
    own(
      tensor(
        data(
          dtype,
          shape.reduce((a, b) => a * b, 1),
          s,
        ),
        { shape, dtype, backend },
      ),
    );
  let q: View;
  let k: View;
  let v: View;
  if (c.fused) {
    if (c.tq !== c.tk) throw new Error('fused q/k/v need tq = tk');
    const h = c.hq + 2 * c.hkv;
    const base = make([c.b, c.tq, h, c.d], seed);
    const st = rowMajor(base.shape);
    q = { ...base, shape: [c.b, c.tq, c.hq, c.d], strides: st };
    k = { ...base, shape: [c.b, c.tk, c.hkv, c.d], strides: st, offset: base.offset + c.hq * c.d };
    v = { ...base, shape: [c.b, c.tk, c.hkv, c.d], strides: st, offset: base.offset + (c.hq + c.hkv) * c.d };
  } else {
    q = make([c.b, c.tq, c.hq, c.d], seed);
    // k stored as [Tk, B, Hkv, D] and read as [B, Tk, Hkv, D].
    const kt = make([c.tk, c.b, c.hkv, c.d], seed + 1);
    k = { ...kt, shape: [c.b, c.tk, c.hkv, c.d], strides: [c.hkv * c.d, c.b * c.hkv * c.d, c.d, 1] };
    v = make([c.b, c.tk, c.hkv, c.d], seed + 2);
  }
  const dout = make([c.b, c.tq, c.hq, c.d], seed + 3);
  let keyMask: View | null = null;
  if (c.mask) {
    const g = new Generator(seed + 4);
    const m = Array.from({ length: c.b * c.tk }, (_, i) => (i < c.tk ? 0 : g.nextU32() % 4 !== 0 ? 1 : 0));
    keyMask = own(tensor(m, { shape: [c.b, c.tk], dtype: 'bool', backend }));
  }
  return { q, k, v, dout, keyMask, owners };
}

export function attnOpts(c: AttnCase, keyMask: View | null, seed = 11, offset = 6): AttentionOpts {
  return {
    scale: 1 / Math.sqrt(c.d),
    causal: c.causal,
    window: c.window,
    keyMask,
    dropout: c.p > 0 ? { p: c.p, seed, offset } : null,
  };
}

/** The kernel pair of a backend, or a composite bound to one. */
export interface AttnImpl {
  attention(out: View, lse: View, q: View, k: View, v: View, opts: AttentionOpts): void;
  attentionBackward(
    dq: View,
    dk: View,
    dv: View,
    dout: View,
    q: View,
    k: View,
    v: View,
    out: View,
    lse: View,
    opts: AttentionOpts,
  ): void;
}

/** A backend's own attention kernels (not the composite): an error when it has none. */
export function ownAttention(impl: AttnImpl | Backend): AttnImpl {
  const { attention, attentionBackward } = impl;
  if (!attention || !attentionBackward) throw new Error('this backend has no attention kernels of its own');
  return { attention: attention.bind(impl), attentionBackward: attentionBackward.bind(impl) };
}

export interface AttnResult {
  out: number[];
  lse: number[];
  dq: number[];
  dk: number[];
  dv: number[];
}

/** Forward then backward of `impl` on `backend`'s buffers; every output read back. */
export function runAttention(
  implOrBackend: AttnImpl | Backend,
  backend: Backend,
  dtype: DType,
  x: AttnInputs,
  opts: AttentionOpts,
): AttnResult {
  const impl = ownAttention(implOrBackend);
  const [b, tq, hq, d] = x.q.shape as [number, number, number, number];
  const [, tk, hkv] = x.k.shape as [number, number, number, number];
  const out = zeros([b, tq, hq, d], { dtype, backend });
  const lse = zeros([b, hq, tq], { dtype, backend });
  const dq = zeros([b, tq, hq, d], { dtype, backend });
  const dk = zeros([b, tk, hkv, d], { dtype, backend });
  const dv = zeros([b, tk, hkv, d], { dtype, backend });
  const w = (t: Tensor) => t.view('test');
  impl.attention(w(out), w(lse), x.q, x.k, x.v, opts);
  impl.attentionBackward(w(dq), w(dk), w(dv), x.dout, x.q, x.k, x.v, w(out), w(lse), opts);
  const res = {
    out: out.toNumbers(),
    lse: lse.toNumbers(),
    dq: dq.toNumbers(),
    dk: dk.toNumbers(),
    dv: dv.toNumbers(),
  };
  for (const t of [out, lse, dq, dk, dv]) t.dispose();
  return res;
}

/** Largest |a − b| − (atol + rtol·|b|) over the elements (≤ 0 means within tolerance); −∞ vs −∞ is equal. */
export function worstExcess(
  a: readonly number[],
  b: readonly number[],
  atol: number,
  rtol: number,
): { i: number; excess: number } {
  if (a.length !== b.length) return { i: -1, excess: Infinity };
  let worst = { i: -1, excess: -Infinity };
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    const e =
      x === y ? -atol : Number.isNaN(x) || Number.isNaN(y) ? Infinity : Math.abs(x - y) - (atol + rtol * Math.abs(y));
    if (e > worst.excess) worst = { i, excess: e };
  }
  return worst;
}
