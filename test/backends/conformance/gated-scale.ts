// The fused kernels of the gated MLP and of VeRA's folded scalings: gatedActivation and its backward
// for every activation with a fused derivative (inputs at an offset into a larger buffer, one gradient
// or both), scaleFold with either scale or both, and scaleGrads over several column tiles and many row
// chunks (the cuda kernel's partial sums), each gradient alone or both, scaleAdd, and scaleBackward
// (dv an f32 product, 1e-6 relative; ds a column sum as scaleGrads').
// Tolerances: the gated kernels form each value as the composite does (f32 intermediates), with the
// activation and its derivative of the backend's own arithmetic: the suite's tolerances of unary
// (2e-6 relative) and unaryGrad (1e-5 relative, 1e-7 absolute), which f32 activations (native's, cuda's
// SiLU) meet; scaleFold and scaleAdd are one or two f32 operations, 1e-6 relative; scaleGrads sums K or O terms of
// magnitude ≤ 1 in a backend-chosen order, 1e-5 relative and 1e-4 absolute (f32 summation error of
// ~1000 such terms).

import type { UnaryGradOp } from '../../../src/backends/backend.js';
import type { Ctx, Pair } from './harness.js';

const ACTS: UnaryGradOp[] = ['silu', 'gelu', 'gelu_tanh', 'tanh', 'sigmoid', 'relu'];

export function gatedScaleTests(ctx: Ctx): void {
  const F = ctx.float;
  /** Random data of the suite's float dtype at offset 5 of a larger buffer. */
  const offsetRf = (shape: [number, number], lo = -1, hi = 1): Pair =>
    ctx.tensor(F, ctx.randf(shape[0] * shape[1] + 5, lo, hi), shape, [shape[1], 1], 5);

  ctx.test(['gatedActivation'], 'gatedActivation for every fused activation, inputs at an offset', () => {
    for (const op of ACTS) {
      const gate = offsetRf([37, 129], -6, 6);
      const up = ctx.rf([37, 129], -2, 2);
      const out = ctx.zeros(F, [37, 129]);
      ctx.both((be, v) => ctx.k(be).gatedActivation(v(out), v(gate), v(up), op));
      ctx.close('gatedActivation', `gatedActivation ${op}`, out, 2e-6, 1e-7);
    }
  });

  ctx.test(['gatedActivationBackward'], 'gatedActivationBackward: both gradients, or either alone', () => {
    for (const op of ACTS) {
      const gate = offsetRf([19, 255], -6, 6);
      const up = ctx.rf([19, 255], -2, 2);
      const dy = ctx.rf([19, 255]);
      for (const [wantG, wantU] of [
        [true, true],
        [true, false],
        [false, true],
      ]) {
        const dg = ctx.zeros(F, [19, 255]);
        const du = ctx.zeros(F, [19, 255]);
        ctx.both((be, v) =>
          ctx.k(be).gatedActivationBackward(wantG ? v(dg) : null, wantU ? v(du) : null, v(gate), v(up), v(dy), op),
        );
        if (wantG) ctx.close('gatedActivationBackward', `gatedActivationBackward ${op} dgate`, dg, 1e-5, 1e-7);
        if (wantU) ctx.close('gatedActivationBackward', `gatedActivationBackward ${op} dup`, du, 2e-6, 1e-7);
      }
    }
  });

  ctx.test(['scaleFold'], 'scaleFold with both scales, either, or none', () => {
    const [o, k] = [37, 70];
    const w = offsetRf([o, k]);
    const r = ctx.rf([o], -2, 2);
    const c = ctx.rf([k], -2, 2);
    for (const [useR, useC] of [
      [true, true],
      [true, false],
      [false, true],
      [false, false],
    ]) {
      const out = ctx.zeros(F, [o, k]);
      ctx.both((be, v) => ctx.k(be).scaleFold(v(out), v(w), useR ? v(r) : null, useC ? v(c) : null));
      ctx.close('scaleFold', `scaleFold rows=${useR} cols=${useC}`, out, 1e-6, 1e-7);
    }
  });

  ctx.test(['scaleAdd'], 'scaleAdd: a scaled [R, N] onto another, a at an offset', () => {
    for (const [r, n] of [
      [37, 129],
      [1, 8],
    ] as [number, number][]) {
      const a = offsetRf([r, n]);
      const v = ctx.rf([r, n], -2, 2);
      const sc = ctx.rf([n], -2, 2);
      const out = ctx.zeros(F, [r, n]);
      ctx.both((be, p) => ctx.k(be).scaleAdd(p(out), p(a), p(v), p(sc)));
      ctx.close('scaleAdd', `scaleAdd [${r}, ${n}]`, out, 1e-6, 1e-7);
    }
  });

  ctx.test(['scaleBackward'], 'scaleBackward: dv and ds together or alone, dy at an offset', () => {
    // [70, 1030]: several column blocks and rows per block on a threaded backend.
    for (const [r, n] of [
      [37, 129],
      [70, 1030],
      [1, 8],
    ] as [number, number][]) {
      const dy = offsetRf([r, n]);
      const v = ctx.rf([r, n], -2, 2);
      const sc = ctx.rf([n], -2, 2);
      for (const [wantV, wantS] of [
        [true, true],
        [true, false],
        [false, true],
      ]) {
        const dv = ctx.zeros(F, [r, n]);
        const ds = ctx.zeros(F, [n]);
        ctx.both((be, p) => ctx.k(be).scaleBackward(wantV ? p(dv) : null, wantS ? p(ds) : null, p(dy), p(v), p(sc)));
        if (wantV) ctx.close('scaleBackward', `scaleBackward [${r}, ${n}] dv`, dv, 1e-6, 1e-7);
        if (wantS) ctx.close('scaleBackward', `scaleBackward [${r}, ${n}] ds`, ds, 1e-5, 1e-4);
      }
    }
  });

  ctx.test(['scaleGrads'], 'scaleGrads over several column tiles and many row chunks', () => {
    // w at an offset (the scalar path of a vectorising backend) or aligned (its 4-wide path).
    for (const [o, k, aligned] of [
      [37, 1100, false],
      [37, 1100, true],
      [64, 1024, true],
      [300, 16, false],
      [1, 1, false],
    ] as [number, number, boolean][]) {
      const g = ctx.rf([o, k]);
      const w = aligned ? ctx.rf([o, k]) : offsetRf([o, k]);
      const r = ctx.rf([o]);
      const c = ctx.rf([k]);
      for (const [wantR, wantC, useR, useC] of [
        [true, true, true, true],
        [true, false, true, true],
        [false, true, true, false],
        [true, true, false, false],
      ]) {
        const rg = ctx.zeros(F, [o]);
        const cg = ctx.zeros(F, [k]);
        ctx.both((be, v) =>
          ctx
            .k(be)
            .scaleGrads(wantR ? v(rg) : null, wantC ? v(cg) : null, v(g), v(w), useR ? v(r) : null, useC ? v(c) : null),
        );
        const tag = `[${o}, ${k}]${aligned ? ' aligned' : ''} scales ${useR},${useC}`;
        if (wantR) ctx.close('scaleGrads', `scaleGrads rowGrad ${tag}`, rg, 1e-5, 1e-4);
        if (wantC) ctx.close('scaleGrads', `scaleGrads colGrad ${tag}`, cg, 1e-5, 1e-4);
      }
    }
  });
}
