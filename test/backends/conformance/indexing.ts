// Index-driven primitives: embedding gather / scatter-add with repeated ids, torch.gather and
// scatter_add along every axis.

import type { Ctx } from './harness.js';
import { size } from './harness.js';

export function indexingTests(ctx: Ctx): void {
  const F = ctx.float;

  ctx.test(['embedding', 'embeddingBackward'], 'embedding and embeddingBackward with repeated ids', () => {
    for (const [v, c, n] of [
      [50, 17, 33],
      [1, 1, 1],
      [1000, 768, 257],
    ]) {
      const w = ctx.rf([v!, c!]);
      const ids = ctx.tensor('i32', ctx.randi(n!, 0, Math.min(v!, 7)), [n!]);
      const out = ctx.zeros(F, [n!, c!]);
      ctx.both((be, p) => be.embedding(p(out), p(w), p(ids)));
      ctx.exact('embedding', `embedding ${v}x${c}`, out);
      const dy = ctx.rf([n!, c!]);
      const dw = ctx.rf([v!, c!]);
      ctx.both((be, p) => be.embeddingBackward(p(dw), p(dy), p(ids)));
      ctx.close('embeddingBackward', `embeddingBackward ${v}x${c}`, dw, 1e-5, 1e-5);
    }
  });

  ctx.test(['gather', 'scatterAdd'], 'gather and scatterAdd along every axis', () => {
    const shape = [5, 7, 3];
    for (let axis = 0; axis < 3; axis++) {
      const ishape = [...shape];
      ishape[axis] = 4;
      const a = ctx.rf(shape);
      const index = ctx.tensor('i32', ctx.randi(size(ishape), 0, shape[axis]!), ishape);
      const out = ctx.zeros(F, ishape);
      ctx.both((be, v) => be.gather(v(out), v(a), v(index), axis));
      ctx.exact('gather', `gather axis ${axis}`, out);
      const src = ctx.rf(ishape);
      const acc = ctx.rf(shape);
      ctx.both((be, v) => be.scatterAdd(v(acc), v(index), v(src), axis));
      ctx.close('scatterAdd', `scatterAdd axis ${axis}`, acc, 1e-6, 1e-6);
    }
  });
}
