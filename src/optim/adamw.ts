// AdamW with decoupled weight decay (torch.optim.AdamW's arithmetic, one fused kernel per tensor) and
// parameter groups, so adapter vectors and a task head can train at different learning rates as the
// VeRA paper does. Optimizer state lives outside scopes and is freed by dispose(); stateDict() and
// loadStateDict() carry it (moments, step count, group hyper-parameters) through training checkpoints.

import { fused } from '../ops/kernels.js';
import { zerosLike } from '../tensor/creation.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

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
  #m = new Map<Tensor, Tensor>();
  #v = new Map<Tensor, Tensor>();
  #step = 0;

  /** torch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01. */
  constructor(params: readonly Tensor[] | readonly ParamGroup[], defaults: AdamWOptions = {}) {
    const groups: ParamGroup[] = isGroups(params) ? [...params] : [{ params }];
    const seen = new Set<Tensor>();
    this.groups = groups.map((g) => ({
      // A tensor tied under two names is one parameter: update it once.
      params: g.params.filter((p) => !seen.has(p) && Boolean(seen.add(p))),
      lr: g.lr ?? defaults.lr ?? 1e-3,
      beta1: (g.betas ?? defaults.betas ?? [0.9, 0.999])[0],
      beta2: (g.betas ?? defaults.betas ?? [0.9, 0.999])[1],
      eps: g.eps ?? defaults.eps ?? 1e-8,
      weightDecay: g.weightDecay ?? defaults.weightDecay ?? 0.01,
    }));
  }

  /** Number of steps taken. */
  get stepCount(): number {
    return this.#step;
  }

  /** Every parameter, group by group (the order stateDict() uses). */
  get params(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }

  /**
   * The state, by reference: the moment tensors are this optimizer's own (do not dispose them), and
   * they change with the next step(); write them out before stepping again.
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
      state: this.params.map((p) => {
        const m = this.#m.get(p);
        const v = this.#v.get(p);
        return m && v ? { m, v } : null;
      }),
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
    // Copies first, then the old moments go: the source may be this optimizer's own stateDict().
    const m = new Map<Tensor, Tensor>();
    const v = new Map<Tensor, Tensor>();
    sd.state.forEach((s, i) => {
      if (!s) return;
      const p = params[i]!;
      for (const [map, src] of [
        [m, s.m],
        [v, s.v],
      ] as const) {
        const t = this.#state(map, p);
        p.backend.copy(t.view('AdamW.loadStateDict'), src.view('AdamW.loadStateDict'));
      }
    });
    this.dispose();
    this.#m = m;
    this.#v = v;
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

  /** Updates every parameter that has a gradient. */
  step(): void {
    this.#step++;
    for (const g of this.groups) {
      for (const p of g.params) {
        if (!p.grad) continue;
        const m = this.#state(this.#m, p);
        const v = this.#state(this.#v, p);
        fused(p.backend).adamw(p.view('adamw'), p.grad.view('adamw'), m.view('adamw'), v.view('adamw'), {
          lr: g.lr,
          beta1: g.beta1,
          beta2: g.beta2,
          eps: g.eps,
          weightDecay: g.weightDecay,
          step: this.#step,
        });
      }
    }
  }

  /** Drops every parameter's gradient (the next backward allocates fresh ones). */
  zeroGrad(): void {
    for (const g of this.groups) {
      for (const p of g.params) {
        p.grad?.dispose();
        p.grad = null;
      }
    }
  }

  dispose(): void {
    for (const t of [...this.#m.values(), ...this.#v.values()]) t.dispose();
    this.#m.clear();
    this.#v.clear();
  }

  #state(map: Map<Tensor, Tensor>, p: Tensor): Tensor {
    let s = map.get(p);
    if (!s) {
      s = keep(zerosLike(p));
      map.set(p, s);
    }
    return s;
  }
}

function isGroups(x: readonly Tensor[] | readonly ParamGroup[]): x is readonly ParamGroup[] {
  return x.length > 0 && 'params' in (x[0] as object);
}
