// One recorded operation of the autograd tape. The tensor module only stores it on outputs; the
// engine in src/autograd records nodes and walks them. A node holds graph references on the tensors
// its rule reads (inputs, output, saved intermediates), so disposing those tensors (by hand or by a
// scope) keeps their storage alive until backward has passed through the node, as torch's saved
// tensors do.

import type { Tensor } from './tensor.js';

/**
 * Computes the gradients of an op's inputs from the gradient of its output. `needs[i]` is false for
 * inputs that do not require grad: the rule must skip their work (a frozen weight's GEMM never runs)
 * and return null in their slot.
 */
export type BackwardFn = (dy: Tensor, needs: readonly boolean[]) => readonly (Tensor | null)[];

/** The rule of an op with several outputs: dys[i] is null for outputs no gradient reached. */
export type MultiBackwardFn = (
  dys: readonly (Tensor | null)[],
  needs: readonly boolean[],
) => readonly (Tensor | null)[];

export class GradNode {
  #backward: MultiBackwardFn | null;
  #held: Tensor[];

  constructor(
    readonly op: string,
    readonly inputs: readonly Tensor[],
    readonly needs: readonly boolean[],
    /** Shapes of the op's outputs; a tensor's gradOutput indexes them. */
    readonly outShapes: readonly (readonly number[])[],
    backward: MultiBackwardFn,
    held: readonly Tensor[],
  ) {
    this.#backward = backward;
    this.#held = [...new Set(held)];
    for (const t of this.#held) t.holdForGraph();
  }

  get freed(): boolean {
    return this.#backward === null;
  }

  /** The backward rule, or null once the graph was freed. */
  get backwardFn(): MultiBackwardFn | null {
    return this.#backward;
  }

  /** Drops the rule and the graph references it held. */
  free(): void {
    if (this.#backward === null) return;
    this.#backward = null;
    for (const t of this.#held) t.releaseFromGraph();
    this.#held = [];
  }
}
