// A backend with primitives only runs the models: tiny GPT-2 and Llama (the fixtures' configs, random
// weights, dropout on, padding in the batch), one training step — forward, label-smoothed
// cross-entropy with ignored positions, backward, AdamW — with every fused kernel that has a
// composite hidden, against the same step on the fused kernels of the same backend.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import { type Backend, FUSED_KERNELS } from '../../src/backends/backend.js';
import { getBackend } from '../../src/backends/registry.js';
import { createModel } from '../../src/models/auto.js';
import * as ops from '../../src/ops/index.js';
import { hasFused, withoutFused } from '../../src/ops/kernels.js';
import { AdamW } from '../../src/optim/adamw.js';
import { tensor } from '../../src/tensor/creation.js';
import { manualSeed } from '../../src/tensor/random.js';
import { scope } from '../../src/tensor/scope.js';
import { nativeSkip } from '../helpers/backends.js';
import { caseDir, worstError } from './fixtures.js';

interface Step {
  logits: number[];
  loss: number;
  grads: Map<string, number[]>;
  params: Map<string, number[]>;
}

const [B, T] = [2, 9];
const ids = Array.from({ length: B * T }, (_, i) => (i * 37 + 11) % 128);
const mask = Array.from({ length: B * T }, (_, i) => (i >= T && i % T >= T - 3 ? 0 : 1)); // row 1 padded at the end

/** One training step of model `name` on `backend`, read back. */
function step(name: string, backend: Backend, dropout: Record<string, number>): Step {
  const model = createModel(caseDir(name), { backend, seed: 7, config: dropout });
  // eps = 1e-3 keeps the update Lipschitz in the gradient (|Δp| ≤ lr·|Δg|/(4·eps)); with torch's 1e-8, a
  // gradient near 1e-8 turns f32 noise into a change of up to lr in its parameter.
  const opt = new AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.1, eps: 1e-3 });
  manualSeed(3); // the same dropout masks on both runs
  try {
    return scope(() => {
      const inputIds = tensor(ids, { dtype: 'i32', shape: [B, T], backend });
      const attentionMask = tensor(mask, { dtype: 'i32', shape: [B, T], backend });
      const logits = model.forward({ inputIds, attentionMask });
      // Next-token targets; padded positions and the last column are ignored.
      const targets = ids.map((_, i) => (i % T === T - 1 || !mask[i + 1] ? -100 : ids[i + 1]!));
      const t = tensor(targets, { dtype: 'i32', shape: [B, T], backend });
      const loss = ops.crossEntropy(logits, t, { labelSmoothing: 0.1 });
      backward(loss);
      const grads = new Map(model.namedParameters().map(([n, p]) => [n, p.grad!.toNumbers()]));
      opt.step();
      return {
        logits: logits.toNumbers(),
        loss: loss.item(),
        grads,
        params: new Map(model.namedParameters().map(([n, p]) => [n, p.toNumbers()])),
      };
    });
  } finally {
    opt.dispose();
    model.dispose();
  }
}

function assertCloseTo(got: number[], want: number[], atol: number, rtol: number, what: string): number {
  const w = worstError(got, want, atol, rtol);
  assert.ok(w.ok, `${what}: element ${w.index} is ${w.got}, fused ${w.want} (|error| ${w.err.toExponential(3)})`);
  return w.maxAbs;
}

// Tolerances (atol, rtol). The composites round each elementwise step to f32 where the fused kernels
// keep row statistics in a wider type; measured: |Δ| ≤ 1e-7 for logits and gradients on js and native,
// ≤ 3e-7 for parameters after the AdamW step (lr·|Δg|/(4·eps) with the eps below). Ten times that:
const TOL = { logits: [1e-6, 1e-5], loss: [1e-6, 1e-6], grads: [1e-6, 1e-4], params: [3e-6, 1e-5] } as const;

const native = nativeSkip();
const backends: [string, (() => Backend) | null][] = [
  ['js', () => getBackend('js')],
  ['native', native ? null : () => getBackend('native')],
];

describe('models on primitives only (every fused kernel with a composite hidden)', () => {
  for (const [bname, make] of backends) {
    for (const [name, dropout] of [
      ['gpt2-lm', { resid_pdrop: 0.1, embd_pdrop: 0.1 }],
      ['llama-lm', {}],
    ] as const) {
      test(
        `${name} training step on ${bname}: composites match the fused kernels`,
        { skip: make ? false : native },
        () => {
          const backend = make!();
          const bare = withoutFused(backend);
          assert.ok(FUSED_KERNELS.every((k) => !hasFused(bare, k)));
          const fusedRun = step(name, backend, dropout);
          const compRun = step(name, bare, dropout);
          assert.ok(Number.isFinite(fusedRun.loss) && fusedRun.loss > 0);
          const e = assertCloseTo(compRun.logits, fusedRun.logits, TOL.logits[0], TOL.logits[1], `${name} logits`);
          assertCloseTo([compRun.loss], [fusedRun.loss], TOL.loss[0], TOL.loss[1], `${name} loss`);
          let g = 0;
          for (const [n, want] of fusedRun.grads) {
            g = Math.max(
              g,
              assertCloseTo(compRun.grads.get(n)!, want, TOL.grads[0], TOL.grads[1], `${name} grad ${n}`),
            );
            // A gradient that is zero everywhere would make the comparison empty.
            assert.ok(
              want.some((x) => x !== 0),
              `${name}: gradient of ${n} is all zero`,
            );
          }
          let p = 0;
          for (const [n, want] of fusedRun.params)
            p = Math.max(p, assertCloseTo(compRun.params.get(n)!, want, TOL.params[0], TOL.params[1], `${name} ${n}`));
          console.log(
            `${name} ${bname}: max |Δ| logits ${e.toExponential(2)}, grads ${g.toExponential(2)}, params after AdamW ${p.toExponential(2)}`,
          );
        },
      );
    }
  }
});
