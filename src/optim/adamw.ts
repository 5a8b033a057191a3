// AdamW with decoupled weight decay (torch.optim.AdamW's arithmetic, one fused kernel per tensor) and
// parameter groups, so adapter vectors and a task head can train at different learning rates as the
// VeRA paper does. Optimizer state lives outside scopes and is freed by dispose().

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

  /** Updates every parameter that has a gradient. */
  step(): void {
    this.#step++;
    for (const g of this.groups) {
      for (const p of g.params) {
        if (!p.grad) continue;
        const m = this.#state(this.#m, p);
        const v = this.#state(this.#v, p);
        p.backend.adamw(p.view('adamw'), p.grad.view('adamw'), m.view('adamw'), v.view('adamw'), {
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
