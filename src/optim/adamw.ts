// AdamW with decoupled weight decay (torch.optim.AdamW's arithmetic in one fused kernel) and parameter
// groups, so adapter vectors and a task head can train at different learning rates as the VeRA paper
// does. Parameters, gradients and moments live in one flat arena (arena.ts), so a step is one kernel
// launch per group however many tensors the group has. Optimizer state lives outside scopes and is
// freed by dispose(); stateDict() and loadStateDict() carry it (moments, step count, group
// hyper-parameters) through training checkpoints.

import { fused } from '../ops/kernels.js';
import type { Tensor } from '../tensor/tensor.js';
import { ParamArena } from './arena.js';

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export interface ParamGroup extends AdamWOptions {
  params: readonly Tensor[];
}

/**
 * An optimizer's state (torch's optimizer.state_dict()): the step count, each group's hyper-parameters,
 * and the moments of each parameter in flat order (group by group, as `params` lists them), null for a
 * parameter that has not been updated yet.
 */
export interface AdamWStateDict {
  step: number;
  groups: { lr: number; betas: [number, number]; eps: number; weightDecay: number; size: number }[];
  state: ({ m: Tensor; v: Tensor } | null)[];
}

interface GroupState {
  params: Tensor[];
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export class AdamW {
  readonly groups: GroupState[];
  /** Every parameter, group after group, in one flat arena; null for an optimizer over nothing. */
  readonly arena: ParamArena | null;
  /** Per parameter: whether it has moments (it was updated once, or they were loaded). */
  #hasState: boolean[];
  #step = 0;

  /**
   * torch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01. The parameters move
   * into the optimizer's arena (src/optim/arena.ts): the same tensors, now views of one buffer. A
   * parameter listed twice (or already in another optimizer) is an error.
   */
  constructor(params: readonly Tensor[] | readonly ParamGroup[], defaults: AdamWOptions = {}) {
    const groups: ParamGroup[] = isGroups(params) ? [...params] : [{ params }];
    this.groups = groups.map((g) => ({
      params: [...g.params],
      lr: g.lr ?? defaults.lr ?? 1e-3,
      beta1: (g.betas ?? defaults.betas ?? [0.9, 0.999])[0],
      beta2: (g.betas ?? defaults.betas ?? [0.9, 0.999])[1],
      eps: g.eps ?? defaults.eps ?? 1e-8,
      weightDecay: g.weightDecay ?? defaults.weightDecay ?? 0.01,
    }));
    const all = this.params;
    this.arena = all.length > 0 ? new ParamArena(all) : null;
    this.#hasState = all.map(() => false);
  }

  /** Number of steps taken. */
  get stepCount(): number {
    return this.#step;
  }

  /** Every parameter, group by group (the order stateDict() and the arena use). */
  get params(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }

  /**
   * The state, by reference: the moment tensors are views of this optimizer's arena (do not dispose
   * them), and they change with the next step(); write them out before stepping again.
   */
  stateDict(): AdamWStateDict {
    return {
      step: this.#step,
      groups: this.groups.map((g) => ({
        lr: g.lr,
        betas: [g.beta1, g.beta2],
        eps: g.eps,
        weightDecay: g.weightDecay,
        size: g.params.length,
      })),
      state: this.#hasState.map((has, i) => (has ? this.arena!.moments(i) : null)),
    };
  }

  /**
   * Restores a state from stateDict() (of an optimizer over parameters of the same shapes, in the same
   * order): the values are copied, so the source tensors may be disposed afterwards.
   */
  loadStateDict(sd: AdamWStateDict): void {
    const params = this.params;
    if (!Number.isInteger(sd.step) || sd.step < 0)
      throw new Error(`[AdamW] loadStateDict: step must be a non-negative integer, got ${sd.step}`);
    const sizes = this.groups.map((g) => g.params.length).join(', ');
    if (sd.groups.length !== this.groups.length || sd.groups.some((g, i) => g.size !== this.groups[i]!.params.length))
      throw new Error(
        `[AdamW] loadStateDict: the state has groups of (${sd.groups.map((g) => g.size).join(', ')}) parameters, this optimizer (${sizes})`,
      );
    if (sd.state.length !== params.length)
      throw new Error(
        `[AdamW] loadStateDict: the state has ${sd.state.length} entries for ${params.length} parameters`,
      );
    sd.state.forEach((s, i) => {
      const p = params[i]!;
      if (!s) return;
      for (const t of [s.m, s.v]) {
        if (t.shape.length !== p.rank || t.shape.some((d, k) => d !== p.shape[k]))
          throw new Error(
            `[AdamW] loadStateDict: moments of parameter ${i} are (${t.shape.join(', ')}), the parameter is (${p.shape.join(', ')})`,
          );
      }
    });
    sd.state.forEach((s, i) => {
      const own = this.arena!.moments(i);
      for (const [dst, src] of [
        [own.m, s?.m ?? null],
        [own.v, s?.v ?? null],
      ] as const) {
        // No state: zeros, what a first update starts from. The source may be this arena's own view.
        if (!src) dst.backend.fill(dst.view('AdamW.loadStateDict'), 0);
        else if (src !== dst) dst.backend.copy(dst.view('AdamW.loadStateDict'), src.view('AdamW.loadStateDict'));
      }
      this.#hasState[i] = s !== null;
    });
    sd.groups.forEach((g, i) => {
      const own = this.groups[i]!;
      own.lr = g.lr;
      own.beta1 = g.betas[0];
      own.beta2 = g.betas[1];
      own.eps = g.eps;
      own.weightDecay = g.weightDecay;
    });
    this.#step = sd.step;
  }

  /**
   * Updates every parameter that has a gradient: one adamw launch per group when all of the group's
   * parameters have one (else one per run of consecutive parameters that do).
   */
  step(): void {
    this.#step++;
    const arena = this.arena;
    if (!arena) return;
    let lo = 0;
    for (const g of this.groups) {
      const hi = lo + g.params.length;
      for (const [from, to] of arena.gradRuns(lo, hi)) {
        fused(arena.backend).adamw(
          arena.span('param', from, to, 'adamw'),
          arena.span('grad', from, to, 'adamw'),
          arena.span('m', from, to, 'adamw'),
          arena.span('v', from, to, 'adamw'),
          {
            lr: g.lr,
            beta1: g.beta1,
            beta2: g.beta2,
            eps: g.eps,
            weightDecay: g.weightDecay,
            step: this.#step,
          },
        );
        this.#hasState.fill(true, from, to);
      }
      lo = hi;
    }
  }

  /** Drops every parameter's gradient (no kernel: the next backward writes the arena afresh). */
  zeroGrad(): void {
    this.arena?.zeroGrad();
  }

  /** Frees the moments and the arena's handles; the parameters stay valid as ordinary tensors. */
  dispose(): void {
    this.arena?.dispose();
  }
}

function isGroups(x: readonly Tensor[] | readonly ParamGroup[]): x is readonly ParamGroup[] {
  return x.length > 0 && 'params' in (x[0] as object);
}
