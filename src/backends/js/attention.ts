// Scaled dot-product attention of the js backend, forward and backward, one (batch, head, query) row
// at a time. Masks are evaluated per (query, key) pair; probabilities are recomputed in the backward
// from the saved log-sum-exp, as the fused native and CUDA kernels do, and so is the dropout mask
// (regenerated from Philox, one row of Tk uniforms at a time).

import type { AttentionOpts, View } from '../backend.js';
import { philoxUniform } from '../philox.js';
import type { FloatArray } from '../dtype.js';
import { bools, contiguousStart, floats, viewOffsets } from './buffer.js';

interface Dims {
  b: number;
  tq: number;
  tk: number;
  hq: number;
  hkv: number;
  d: number;
}

function dims(q: View, k: View, v: View): Dims {
  const [b, tq, hq, d] = q.shape as [number, number, number, number];
  const [bk, tk, hkv, dk] = k.shape as [number, number, number, number];
  if (q.shape.length !== 4 || k.shape.length !== 4 || v.shape.length !== 4)
    throw new Error('[js attention] Expected 4-D q, k, v');
  if (bk !== b || dk !== d || v.shape.some((s, i) => s !== k.shape[i]) || hq % hkv !== 0) {
    throw new Error(
      `[js attention] Shapes q (${q.shape.join(', ')}), k (${k.shape.join(', ')}), v (${v.shape.join(', ')}) do not agree`,
    );
  }
  for (const x of [q, k, v])
    if (x.strides[3] !== 1) throw new Error('[js attention] The head axis of q, k, v must be contiguous');
  return { b, tq, tk, hq, hkv, d };
}

/** A predicate saying whether query i of batch b may see key j. */
function visibility(dm: Dims, opts: AttentionOpts): (b: number, i: number, j: number) => boolean {
  const shift = dm.tk - dm.tq;
  const mask = opts.keyMask ? bools(opts.keyMask, 'attention') : null;
  const ms = opts.keyMask ? contiguousStart(opts.keyMask, 'attention') : 0;
  return (b, i, j) => {
    if (opts.causal && j > i + shift) return false;
    if (opts.window > 0 && i + shift - j >= opts.window) return false;
    if (mask && !mask[ms + b * dm.tk + j]) return false;
    return true;
  };
}

/**
 * The dropout multiplier of each key of row (b, h, i): 1/(1 − p) when kept, 0 when dropped, written
 * into `keep` (length Tk); null when opts has no dropout.
 */
function dropoutRows(
  dm: Dims,
  opts: AttentionOpts,
  op: string,
): ((b: number, h: number, i: number, keep: Float64Array) => void) | null {
  const d = opts.dropout;
  if (!d) return null;
  if (!(d.p >= 0 && d.p < 1)) throw new Error(`[js ${op}] dropout p = ${d.p} must be in [0, 1)`);
  const scale = 1 / (1 - d.p);
  return (b, h, i, keep) => {
    philoxUniform(d.seed, d.offset + ((b * dm.hq + h) * dm.tq + i) * dm.tk, keep);
    for (let j = 0; j < dm.tk; j++) keep[j] = keep[j]! >= d.p ? scale : 0;
  };
}

function at(x: View, b: number, t: number, h: number): number {
  return x.offset + b * x.strides[0]! + t * x.strides[1]! + h * x.strides[2]!;
}

function dot(a: FloatArray, ao: number, b: FloatArray, bo: number, d: number): number {
  let s = 0;
  for (let i = 0; i < d; i++) s += a[ao + i]! * b[bo + i]!;
  return s;
}

export function attention(out: View, lse: View, q: View, k: View, v: View, opts: AttentionOpts): void {
  const dm = dims(q, k, v);
  for (const x of [q, k, v]) viewOffsets(x, 'attention');
  const qd = floats(q, 'attention');
  const kd = floats(k, 'attention');
  const vd = floats(v, 'attention');
  const od = floats(out, 'attention');
  const ld = floats(lse, 'attention');
  const os = contiguousStart(out, 'attention');
  const ls = contiguousStart(lse, 'attention');
  const visible = visibility(dm, opts);
  const drop = dropoutRows(dm, opts, 'attention');
  const s = new Float64Array(dm.tk);
  const keep = new Float64Array(dm.tk).fill(1);
  const acc = new Float64Array(dm.d);
  const group = dm.hq / dm.hkv;
  for (let b = 0; b < dm.b; b++) {
    for (let h = 0; h < dm.hq; h++) {
      const hk = Math.floor(h / group);
      for (let i = 0; i < dm.tq; i++) {
        const qo = at(q, b, i, h);
        let max = -Infinity;
        for (let j = 0; j < dm.tk; j++) {
          s[j] = visible(b, i, j) ? opts.scale * dot(qd, qo, kd, at(k, b, j, hk), dm.d) : -Infinity;
          max = Math.max(max, s[j]!);
        }
        const oo = os + ((b * dm.tq + i) * dm.hq + h) * dm.d;
        const lo = ls + (b * dm.hq + h) * dm.tq + i;
        if (max === -Infinity) {
          ld[lo] = -Infinity;
          for (let c = 0; c < dm.d; c++) od[oo + c] = 0;
          continue;
        }
        if (drop) drop(b, h, i, keep);
        let sum = 0;
        acc.fill(0);
        for (let j = 0; j < dm.tk; j++) {
          if (s[j] === -Infinity) continue;
          const p = Math.exp(s[j]! - max);
          sum += p; // the normaliser (and lse) is the undropped one
          const pd = p * keep[j]!;
          const vo = at(v, b, j, hk);
          for (let c = 0; c < dm.d; c++) acc[c]! += pd * vd[vo + c]!;
        }
        ld[lo] = max + Math.log(sum);
        for (let c = 0; c < dm.d; c++) od[oo + c] = acc[c]! / sum;
      }
    }
  }
}

export function attentionBackward(
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
  const dm = dims(q, k, v);
  for (const x of [q, k, v]) viewOffsets(x, 'attentionBackward');
  const qd = floats(q, 'attentionBackward');
  const kd = floats(k, 'attentionBackward');
  const vd = floats(v, 'attentionBackward');
  const od = floats(out, 'attentionBackward');
  const gd = floats(dout, 'attentionBackward');
  const ld = floats(lse, 'attentionBackward');
  const gq = floats(dq, 'attentionBackward');
  const gk = floats(dk, 'attentionBackward');
  const gv = floats(dv, 'attentionBackward');
  const os = contiguousStart(out, 'attentionBackward');
  const gs = contiguousStart(dout, 'attentionBackward');
  const ls = contiguousStart(lse, 'attentionBackward');
  const qs = contiguousStart(dq, 'attentionBackward');
  const ks = contiguousStart(dk, 'attentionBackward');
  const vs = contiguousStart(dv, 'attentionBackward');
  gq.fill(0, qs, qs + dm.b * dm.tq * dm.hq * dm.d);
  gk.fill(0, ks, ks + dm.b * dm.tk * dm.hkv * dm.d);
  gv.fill(0, vs, vs + dm.b * dm.tk * dm.hkv * dm.d);
  const visible = visibility(dm, opts);
  const drop = dropoutRows(dm, opts, 'attentionBackward');
  const keep = new Float64Array(dm.tk).fill(1);
  const group = dm.hq / dm.hkv;
  for (let b = 0; b < dm.b; b++) {
    for (let h = 0; h < dm.hq; h++) {
      const hk = Math.floor(h / group);
      for (let i = 0; i < dm.tq; i++) {
        const l = ld[ls + (b * dm.hq + h) * dm.tq + i]!;
        if (l === -Infinity) continue;
        if (drop) drop(b, h, i, keep);
        const qo = at(q, b, i, h);
        const row = ((b * dm.tq + i) * dm.hq + h) * dm.d;
        // rowsum(dO ∘ O) = rowsum(P ∘ dP) with dP = M ∘ dO·Vᵀ the gradient of the undropped P (M the
        // dropout multipliers), since O = (P ∘ M)·V.
        const delta = dot(gd, gs + row, od, os + row, dm.d);
        for (let j = 0; j < dm.tk; j++) {
          if (!visible(b, i, j)) continue;
          const ko = at(k, b, j, hk);
          const vo = at(v, b, j, hk);
          const p = Math.exp(opts.scale * dot(qd, qo, kd, ko, dm.d) - l);
          const m = keep[j]!;
          const dp = m * dot(gd, gs + row, vd, vo, dm.d);
          const ds = p * (dp - delta) * opts.scale;
          const pd = p * m;
          const kvRow = ((b * dm.tk + j) * dm.hkv + hk) * dm.d;
          for (let c = 0; c < dm.d; c++) {
            gv[vs + kvRow + c]! += pd * gd[gs + row + c]!;
            gq[qs + row + c]! += ds * kd[ko + c]!;
            gk[ks + kvRow + c]! += ds * qd[qo + c]!;
          }
        }
      }
    }
  }
}
