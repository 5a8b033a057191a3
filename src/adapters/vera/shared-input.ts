// VeRA's A is one matrix for every layer, so layers that read the same input tensor (a Llama block's
// q_proj, k_proj and v_proj; gate_proj and up_proj; BERT's query, key and value) compute the same
// h = x·A_sᵀ. This cache lets the first of them compute it and the others reuse it: h is then one graph
// node with several consumers, so the backward adds their gradients at h and runs a single dX GEMM
// through A instead of one per layer. PEFT computes h in every layer; outputs are the same floats, and
// the input gradient differs only by the order of a sum (Σ dh_i · A_s instead of Σ (dh_i · A_s)).
//
// When a product may be reused (anything else misses and computes h afresh):
// - the same x object, the same A tensor and the same slice width; callers only ask when no dropout
//   applies to x (dropout draws a separate mask per layer, so there is nothing in common);
// - inside a scope: h then lives exactly as long as the scope that made it (a block's forward), and a
//   disposed h or x is never handed out; outside any scope nothing would bound its life, so nothing is
//   shared there;
// - grad mode and x.requiresGrad as when h was made (an h made under noGrad has no graph node), and h's
//   graph node not yet freed by a backward;
// - A unchanged: VeraMethod calls clear() when an adapter is prepared (its file's projections are then
//   written over the shared A); projections made anew are new tensors, which the key tells apart.
// vera-ts never writes into an activation in place (in-place writes go to parameters, gradients,
// optimizer state and KV-cache buffers only), so a live x cannot change under its cached product; code
// that writes into x or A by hand between two layers' calls must turn sharing off (enabled = false).

import { isGradEnabled } from '../../autograd/graph.js';
import * as ops from '../../ops/index.js';
import { scopeDepth } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';

interface Product {
  a: Tensor; // the full projection A (R, max_in) the product was taken with
  inFeatures: number;
  grad: boolean; // grad mode when it was made
  inputRequiresGrad: boolean;
  h: Tensor; // x·A[:, :inFeatures]ᵀ, (..., R)
}

export class SharedInputProjection {
  /** Off: every layer computes its own product (PEFT's arithmetic, for comparisons). */
  enabled: boolean;
  #products = new WeakMap<Tensor, Product[]>();

  constructor(enabled = true) {
    this.enabled = enabled;
  }

  /** h = x·A_sᵀ with A_s = a[:, :inFeatures] (..., R): an earlier layer's product when one is valid. */
  project(x: Tensor, a: Tensor, inFeatures: number): Tensor {
    const compute = () => ops.linear(x, ops.slice(a, 1, 0, inFeatures));
    if (!this.enabled || scopeDepth() === 0 || x.disposed) return compute();
    const grad = isGradEnabled();
    const matches = (p: Product) =>
      p.a === a && p.inFeatures === inFeatures && p.grad === grad && p.inputRequiresGrad === x.requiresGrad;
    const live = (this.#products.get(x) ?? []).filter((p) => usable(p.h));
    const hit = live.find(matches);
    if (hit) return hit.h;
    const h = compute();
    live.push({ a, inFeatures, grad, inputRequiresGrad: x.requiresGrad, h });
    this.#products.set(x, live);
    return h;
  }

  /** Forgets every product (the projections changed). */
  clear(): void {
    this.#products = new WeakMap();
  }
}

function usable(h: Tensor): boolean {
  return !h.disposed && !(h.gradFn?.freed ?? false);
}
