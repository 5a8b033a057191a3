// Scaled dot-product attention composed from primitive kernels (copy, fill, matmul, unary, scalar,
// binary, where, reduce), for a backend without the fused attention kernels, and the reference the
// fused kernels are checked against. Same arguments and semantics as Backend.attention /
// attentionBackward (src/backends/backend.ts): causal aligned to the last query, sliding window,
// key-padding mask, grouped-query heads, strided q/k/v with last stride 1, rows with no visible key
// (output 0, lse −∞) and probability dropout.
//
// Unlike the fused kernels this stores the [B, Hq, Tq, Tk] scores. Heads are first copied into
// head-major [B, H, T, D] buffers: the query heads of kv head g are then consecutive, so for each
// (batch, kv head) the Hq/Hkv query heads stack into one [Hq/Hkv · Tq, D] matrix and every product is
// a single batched GEMM over B·Hkv — the scores come out as [B, Hq, Tq, Tk] and dK/dV sum over the
// group inside the GEMM. The causal/window mask and the dropout multipliers depend only on shapes and
// on Philox, so they are built on the host and uploaded; nothing is read back.

import type { AttentionOpts, Backend, View } from '../../backends/backend.js';
import { philoxUniform } from '../../backends/philox.js';
import type { DType } from '../../backends/dtype.js';
import { contiguousStrides } from '../../tensor/shape.js';
import { Scratch } from './scratch.js';

interface Dims {
  b: number;
  tq: number;
  tk: number;
  hq: number;
  hkv: number;
  d: number;
  /** Query heads per kv head. */
  g: number;
}

function dims(op: string, q: View, k: View, v: View): Dims {
  if (q.shape.length !== 4 || k.shape.length !== 4 || v.shape.length !== 4)
    throw new Error(
      `[${op}] Expected 4-D q, k, v, got (${q.shape.join(', ')}), (${k.shape.join(', ')}), (${v.shape.join(', ')})`,
    );
  const [b, tq, hq, d] = q.shape as [number, number, number, number];
  const [bk, tk, hkv, dk] = k.shape as [number, number, number, number];
  if (bk !== b || dk !== d || v.shape.some((s, i) => s !== k.shape[i]) || hkv === 0 || hq % hkv !== 0) {
    throw new Error(
      `[${op}] Shapes q (${q.shape.join(', ')}), k (${k.shape.join(', ')}), v (${v.shape.join(', ')}) do not agree`,
    );
  }
  for (const x of [q, k, v])
    if (d > 1 && x.strides[3] !== 1) throw new Error(`[${op}] The head axis (last) of q, k, v must be contiguous`);
  if (q.dtype !== k.dtype || q.dtype !== v.dtype)
    throw new Error(`[${op}] q, k, v dtypes differ: ${q.dtype}, ${k.dtype}, ${v.dtype}`);
  return { b, tq, tk, hq, hkv, d, g: hq / hkv };
}

/** Another shape/strides on the same storage. */
function as(v: View, shape: readonly number[], strides: readonly number[], offset = v.offset): View {
  return { buf: v.buf, dtype: v.dtype, offset, shape, strides };
}

/** A contiguous head-major [B, H, T, D] buffer seen in the [B, T, H, D] index order. */
function timeMajor(x: View): View {
  const [b, h, t, d] = x.shape as [number, number, number, number];
  return as(x, [b, t, h, d], [h * t * d, d, t * d, 1]);
}

/** x [B, T, H, D] (any strides) copied into a contiguous head-major [B, H, T, D] buffer. */
function headMajor(s: Scratch, x: View): View {
  const [b, t, h, d] = x.shape as [number, number, number, number];
  const out = s.tmp(x.dtype, [b, h, t, d]);
  s.backend.copy(timeMajor(out), x);
  return out;
}

/** A contiguous [B, H, T, X] buffer as the 3-D batch [B·Hkv, G·T, X] that GEMMs take (or its transpose). */
function grouped(x: View, dm: Dims, transpose = false): View {
  const rows = (x.shape[1]! / dm.hkv) * x.shape[2]!;
  const cols = x.shape[3]!;
  return transpose
    ? as(x, [dm.b * dm.hkv, cols, rows], [rows * cols, 1, cols])
    : as(x, [dm.b * dm.hkv, rows, cols], [rows * cols, cols, 1]);
}

/** 'bool' [Tq, Tk] with 1 where the causal / window mask lets query i see key j; null when neither is set. */
function shapeMask(dm: Dims, opts: AttentionOpts): Uint8Array | null {
  if (!opts.causal && !(opts.window > 0)) return null;
  const shift = dm.tk - dm.tq;
  const m = new Uint8Array(dm.tq * dm.tk);
  for (let i = 0; i < dm.tq; i++) {
    for (let j = 0; j < dm.tk; j++) {
      const ok = (!opts.causal || j <= i + shift) && !(opts.window > 0 && i + shift - j >= opts.window);
      m[i * dm.tk + j] = ok ? 1 : 0;
    }
  }
  return m;
}

/** The dropout multipliers [B, Hq, Tq, Tk] (1/(1 − p) kept, 0 dropped), uploaded; null without dropout. */
function dropoutMultipliers(op: string, s: Scratch, dm: Dims, opts: AttentionOpts, dtype: DType): View | null {
  const d = opts.dropout;
  if (!d) return null;
  if (!(d.p >= 0 && d.p < 1)) throw new Error(`[${op}] dropout p = ${d.p} must be in [0, 1)`);
  const shape = [dm.b, dm.hq, dm.tq, dm.tk];
  const n = dm.b * dm.hq * dm.tq * dm.tk;
  // Element ((b·Hq + h)·Tq + i)·Tk + j of the row-major [B, Hq, Tq, Tk] is the mask's Philox index.
  const u = new Float64Array(n);
  philoxUniform(d.seed, d.offset, u);
  const scale = 1 / (1 - d.p);
  const host = dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
  for (let i = 0; i < n; i++) host[i] = u[i]! >= d.p ? scale : 0;
  const m = s.tmp(dtype, shape);
  s.backend.upload(m.buf, dtype, 0, host);
  return m;
}

/**
 * Scaled, masked scores S [B, Hq, Tq, Tk] (−∞ where a key is hidden) and the head-major q, k, v.
 */
function scores(s: Scratch, dm: Dims, q: View, k: View, v: View, opts: AttentionOpts) {
  const be = s.backend;
  const f = q.dtype;
  const qh = headMajor(s, q);
  const kh = headMajor(s, k);
  const vh = headMajor(s, v);
  const full = [dm.b, dm.hq, dm.tq, dm.tk];
  const sc = s.tmp(f, full);
  be.matmul(grouped(sc, dm), grouped(qh, dm), grouped(kh, dm, true), false);
  be.scalar('mul_s', sc, sc, opts.scale);
  const negInf = s.constant(f, -Infinity, full);
  const visible = shapeMask(dm, opts);
  if (visible) {
    const m = s.tmp('bool', [dm.tq, dm.tk]);
    be.upload(m.buf, 'bool', 0, visible);
    be.where(sc, as(m, full, [0, 0, dm.tk, 1]), sc, negInf);
  }
  const km = opts.keyMask;
  if (km) {
    if (km.dtype !== 'bool' || km.shape.length !== 2 || km.shape[0] !== dm.b || km.shape[1] !== dm.tk)
      throw new Error(
        `[attention] keyMask must be bool [B, Tk] = (${dm.b}, ${dm.tk}), got ${km.dtype} (${km.shape.join(', ')})`,
      );
    be.where(sc, as(km, full, [km.strides[0]!, 0, 0, km.strides[1]!]), sc, negInf);
  }
  return { sc, qh, kh, vh };
}

/** A [B, Hq, Tq, 1] column broadcast along the keys. */
function acrossKeys(col: View, dm: Dims): View {
  return as(col, [dm.b, dm.hq, dm.tq, dm.tk], [col.strides[0]!, col.strides[1]!, col.strides[2]!, 0]);
}

export function attention(b: Backend, out: View, lse: View, q: View, k: View, v: View, opts: AttentionOpts): void {
  const dm = dims('attention', q, k, v);
  const f = q.dtype;
  const rows = [dm.b, dm.hq, dm.tq, 1];
  const lse4 = as(lse, rows, contiguousStrides(rows));
  if (dm.b * dm.hq * dm.tq === 0) return;
  if (dm.tk === 0) {
    b.fill(out, 0);
    b.fill(lse, -Infinity);
    return;
  }
  const s = new Scratch(b);
  try {
    const { sc, vh } = scores(s, dm, q, k, v, opts);
    const zero = s.constant(f, 0, rows);
    // Row maximum, 0 for rows with no visible key (all −∞), so that S − max stays −∞ there, not NaN.
    const max = s.tmp(f, rows);
    b.reduce('max', max, sc, [3]);
    const empty = s.tmp('bool', rows);
    b.scalar('eq_s', empty, max, -Infinity);
    b.where(max, empty, zero, max);
    b.binary('sub', sc, sc, acrossKeys(max, dm));
    b.unary('exp', sc, sc);
    const sum = s.tmp(f, rows);
    b.reduce('sum', sum, sc, [3]);
    // lse = max + log(sum): −∞ for an empty row (sum 0), whose probabilities become 0 below.
    b.unary('log', lse4, sum);
    b.binary('add', lse4, lse4, max);
    const inv = s.tmp(f, rows);
    b.unary('recip', inv, sum);
    b.where(inv, empty, zero, inv);
    b.binary('mul', sc, sc, acrossKeys(inv, dm)); // P
    const keep = dropoutMultipliers('attention', s, dm, opts, f);
    if (keep) b.binary('mul', sc, sc, keep);
    const oh = s.tmp(f, [dm.b, dm.hq, dm.tq, dm.d]);
    b.matmul(grouped(oh, dm), grouped(sc, dm), grouped(vh, dm), false);
    b.copy(out, timeMajor(oh));
  } finally {
    s.free();
  }
}

export function attentionBackward(
  b: Backend,
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
): void {
  const dm = dims('attentionBackward', q, k, v);
  const f = q.dtype;
  if (dm.b * dm.hq * dm.tq === 0 || dm.tk === 0) {
    for (const g of [dq, dk, dv]) b.fill(g, 0);
    return;
  }
  const rows = [dm.b, dm.hq, dm.tq, 1];
  const s = new Scratch(b);
  try {
    const { sc, qh, kh, vh } = scores(s, dm, q, k, v, opts);
    // P = exp(S − lse) from the saved lse; an empty row (lse −∞) uses 0 instead, giving P = 0.
    const l = s.tmp(f, rows);
    b.copy(l, as(lse, rows, contiguousStrides(rows)));
    const empty = s.tmp('bool', rows);
    b.scalar('eq_s', empty, l, -Infinity);
    b.where(l, empty, s.constant(f, 0, rows), l);
    b.binary('sub', sc, sc, acrossKeys(l, dm));
    b.unary('exp', sc, sc); // P
    const doh = headMajor(s, dout);
    // Di = rowsum(dO ∘ O), [B, Tq, Hq, 1] read as [B, Hq, Tq, 1].
    const prod = s.tmp(f, dout.shape);
    b.binary('mul', prod, dout, out);
    const di = s.tmp(f, [dm.b, dm.tq, dm.hq, 1]);
    b.reduce('sum', di, prod, [3]);
    const diRows = as(di, [dm.b, dm.hq, dm.tq, dm.tk], [dm.tq * dm.hq, 1, dm.hq, 0]);
    // With dropout, O = (P ∘ M)·V: dV uses P ∘ M, and the gradient of P is M ∘ dO·Vᵀ.
    const keep = dropoutMultipliers('attentionBackward', s, dm, opts, f);
    let pd = sc;
    if (keep) {
      pd = s.tmp(f, sc.shape);
      b.binary('mul', pd, sc, keep);
    }
    const gradKv = (dst: View, lhsT: View, rhs: View) => {
      const acc = s.tmp(f, [dm.b, dm.hkv, dm.tk, dm.d]);
      b.matmul(grouped(acc, dm), grouped(lhsT, dm, true), grouped(rhs, dm), false);
      b.copy(dst, timeMajor(acc));
    };
    gradKv(dv, pd, doh); // dV = (P ∘ M)ᵀ dO, summed over the group's query heads
    const dp = s.tmp(f, sc.shape);
    b.matmul(grouped(dp, dm), grouped(doh, dm), grouped(vh, dm, true), false);
    if (keep) b.binary('mul', dp, dp, keep);
    // dS = scale · P ∘ (dP − Di), in place in dP.
    b.binary('sub', dp, dp, diRows);
    b.binary('mul', dp, dp, sc);
    b.scalar('mul_s', dp, dp, opts.scale);
    const dqh = s.tmp(f, [dm.b, dm.hq, dm.tq, dm.d]);
    b.matmul(grouped(dqh, dm), grouped(dp, dm), grouped(kh, dm), false);
    b.copy(dq, timeMajor(dqh));
    gradKv(dk, dp, qh); // dK = dSᵀ Q
  } finally {
    s.free();
  }
}
