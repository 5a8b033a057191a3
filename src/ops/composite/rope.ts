// Rotary embedding (HF's rotate_half layout) from primitives: each half of the head axis is computed
// into a dense temporary from strided views of x and broadcast views of the angle tables, then copied
// into its half of the output (binary writes dense outputs only; copy writes strided ones).

import type { Backend, View } from '../../backends/backend.js';
import { isContiguous, withScratch } from './scratch.js';

function check(out: View, x: View, cos: View, sin: View): void {
  if (x.shape.length !== 4) throw new Error(`[rope] x must be [B, T, H, D], got (${x.shape.join(', ')})`);
  const [b, t, h, d] = x.shape as [number, number, number, number];
  if (d % 2 !== 0) throw new Error(`[rope] Head size ${d} must be even`);
  if (x.strides[3] !== 1) throw new Error('[rope] The last axis of x must be contiguous');
  if (out.shape.length !== 4 || out.shape.some((s, i) => s !== x.shape[i]) || !isContiguous(out)) {
    throw new Error(`[rope] out (${out.shape.join(', ')}) must be contiguous [${b}, ${t}, ${h}, ${d}]`);
  }
  const cb = cos.shape[0];
  for (const tab of [cos, sin]) {
    if (
      tab.shape.length !== 3 ||
      (tab.shape[0] !== 1 && tab.shape[0] !== b) ||
      tab.shape[0] !== cb ||
      tab.shape[1] !== t ||
      tab.shape[2] !== d / 2 ||
      !isContiguous(tab)
    ) {
      throw new Error(`[rope] Table shape (${tab.shape.join(', ')}) does not fit x (${x.shape.join(', ')})`);
    }
  }
}

/** backend.rope's semantics: out[..., :D/2] = x1·cos − x2·sin, out[..., D/2:] = x2·cos + x1·sin (sin negated when inverse). */
export function rope(b: Backend, out: View, x: View, cos: View, sin: View, inverse: boolean): void {
  check(out, x, cos, sin);
  const [bt, t, h, d] = x.shape as [number, number, number, number];
  const half = d / 2;
  const shape = [bt, t, h, half];
  const half1 = (v: View, at: number, strides: readonly number[]): View => ({
    buf: v.buf,
    dtype: v.dtype,
    offset: v.offset + at,
    shape,
    strides,
  });
  const x1 = half1(x, 0, x.strides);
  const x2 = half1(x, half, x.strides);
  const tableStrides = [cos.shape[0] === 1 ? 0 : t * half, half, 0, 1];
  const c = half1(cos, 0, tableStrides);
  const sn = half1(sin, 0, tableStrides);
  const os = [t * h * d, h * d, d, 1];
  withScratch(b, (s) => {
    const acc = s.tmp(x.dtype, shape);
    const term = s.tmp(x.dtype, shape);
    // First half: x1·cos ∓ x2·sin; second half: x2·cos ± x1·sin.
    for (const [lead, other, sign] of [
      [x1, x2, inverse ? 'add' : 'sub'],
      [x2, x1, inverse ? 'sub' : 'add'],
    ] as const) {
      b.binary('mul', acc, lead, c);
      b.binary('mul', term, other, sn);
      b.binary(sign, acc, acc, term);
      b.copy(half1(out, lead === x1 ? 0 : half, os), acc);
    }
  });
}
