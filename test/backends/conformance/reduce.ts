// Reductions: sum / max / min over every axis set of dense, permuted and broadcast views, NaN
// propagation; argmax and topk with ties, NaN and odd sizes.

import type { Ctx } from './harness.js';
import { contiguous, size } from './harness.js';

export function reduceTests(ctx: Ctx): void {
  const F = ctx.float;

  ctx.test(['reduce'], 'reduce: sum / max / min over axis sets of dense and strided views', () => {
    const shapes: [number[], number[][]][] = [
      [
        [5, 17, 3],
        [[0], [1], [2], [0, 1], [1, 2], [0, 2], [0, 1, 2], []],
      ],
      [
        [129, 33],
        [[0], [1], [0, 1]],
      ],
      [
        [1, 7, 1],
        [[0], [1], [2]],
      ],
    ];
    for (const op of ['sum', 'max', 'min'] as const) {
      for (const [shape, axesList] of shapes) {
        for (const axes of axesList) {
          const oshape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
          const a = ctx.rf(shape);
          const out = ctx.zeros(F, oshape);
          ctx.both((be, v) => be.reduce(op, v(out), v(a), axes));
          ctx.close('reduce', `reduce ${op} ${JSON.stringify(shape)} axes ${JSON.stringify(axes)}`, out, 1e-6, 1e-6);
          // The same values read through a permuted (non-contiguous) view.
          const rev = [...shape].reverse();
          const t = ctx.ft(ctx.randf(size(shape)), shape, contiguous(rev).reverse());
          ctx.both((be, v) => be.reduce(op, v(out), v(t), axes));
          ctx.close(
            'reduce',
            `reduce ${op} transposed ${JSON.stringify(shape)} axes ${JSON.stringify(axes)}`,
            out,
            1e-6,
            1e-6,
          );
        }
      }
    }
    // Bias-gradient shape (sum over leading axes), last-axis sums, a full sum, and a broadcast input.
    for (const [shape, axes] of [
      [
        [64, 9, 768],
        [0, 1],
      ],
      [[4096, 3], [0]],
      [[300, 2049], [1]],
      [[100003], [0]],
    ] as [number[], number[]][]) {
      const a = ctx.rf(shape);
      const out = ctx.zeros(
        F,
        shape.map((d, i) => (axes.includes(i) ? 1 : d)),
      );
      ctx.both((be, v) => be.reduce('sum', v(out), v(a), axes));
      ctx.close('reduce', `reduce sum ${JSON.stringify(shape)} ${JSON.stringify(axes)}`, out, 1e-5, 1e-5);
    }
    const bc = ctx.ft(ctx.randf(7), [9, 7], [0, 1]);
    const bo = ctx.zeros(F, [1, 7]);
    ctx.both((be, v) => be.reduce('sum', v(bo), v(bc), [0]));
    ctx.close('reduce', 'reduce sum broadcast', bo, 1e-6, 1e-6);
    // NaN propagates through max / min; −∞ is a value like any other.
    const nd = ctx.randf(40);
    nd[13] = NaN;
    nd[25] = -Infinity;
    const na = ctx.ft(nd, [4, 10]);
    const no = ctx.zeros(F, [4, 1]);
    for (const op of ['max', 'min'] as const) {
      ctx.both((be, v) => be.reduce(op, v(no), v(na), [1]));
      ctx.exact('reduce', `reduce ${op} NaN`, no);
    }
  });

  ctx.test(['argmax', 'topk'], 'argmax and topk: ties, NaN, odd sizes', () => {
    const f = Float32Array.from(ctx.randi(17 * 129, 0, 40));
    f[129 * 3 + 77] = NaN;
    const a = ctx.ft(f, [17, 129]);
    const out = ctx.zeros('i32', [17]);
    ctx.both((be, v) => be.argmax(v(out), v(a)));
    ctx.exact('argmax', 'argmax', out);
    for (const k of [0, 1, 7, 129]) {
      const vals = ctx.zeros(F, [17, k]);
      const idx = ctx.zeros('i32', [17, k]);
      ctx.both((be, v) => be.topk(v(vals), v(idx), v(a), k));
      ctx.exact('topk', `topk values k=${k}`, vals);
      ctx.exact('topk', `topk indices k=${k}`, idx);
    }
  });
}
