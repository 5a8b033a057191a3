// A flat arena (as in llm.c): an optimizer's parameters become contiguous views into one buffer, their
// gradients views into a second and AdamW's two moments views into two more, laid out in the same
// order. An update, a gradient norm or a clip over many small tensors (VeRA's λ vectors: two per
// adapted layer) is then one kernel launch over a span of the buffers instead of one per tensor.
//
// Gradients: backward writes each parameter's gradient straight into its slot (setGradSlot in
// src/autograd/backward.ts): the first contribution of a step is copied, later ones (micro-batches,
// a tied weight) are added in place, so nothing is allocated per step and the bits are those of the
// unpacked path. A parameter "has a gradient" exactly when its .grad is its slot, as .grad !== null
// meant before; zeroGrad() only drops those handles (no kernel at all: the next backward copies).

import type { Backend, View } from '../backends/backend.js';
import { gradSlot, setGradSlot } from '../autograd/backward.js';
import type { DType } from '../backends/dtype.js';
import { fmtShape } from '../tensor/errors.js';
import { keep } from '../tensor/scope.js';
import { Storage } from '../tensor/storage.js';
import { Tensor } from '../tensor/tensor.js';

/** The four buffers of an arena, element for element. */
export type ArenaBuffer = 'param' | 'grad' | 'm' | 'v';

/** Which arena holds a parameter, and at which position. */
const homes = new WeakMap<Tensor, { arena: ParamArena; index: number }>();

export class ParamArena {
  readonly backend: Backend;
  readonly dtype: DType;
  readonly params: readonly Tensor[];
  /** Element offset of parameter i in every buffer (the last entry is the total). */
  readonly offsets: readonly number[];
  #flat: Record<ArenaBuffer, Tensor>;
  #m: Tensor[];
  #v: Tensor[];
  #disposed = false;

  /**
   * Moves `params` (one backend, one floating dtype, each at most once and in no other arena) into
   * fresh buffers, in order; gradients they already have move into their slots. m and v start at zero.
   */
  constructor(params: readonly Tensor[]) {
    if (params.length === 0) throw new Error('[arena] An arena needs at least one parameter');
    const first = params[0]!;
    this.backend = first.backend;
    this.dtype = first.dtype;
    const seen = new Map<Tensor, number>();
    params.forEach((p, i) => {
      const what = `parameter ${i}${p.name ? ` "${p.name}"` : ''} ${fmtShape(p.shape)}`;
      const twice = seen.get(p);
      if (twice !== undefined) throw new Error(`[arena] ${what} is listed twice (also as parameter ${twice})`);
      seen.set(p, i);
      if (homes.has(p))
        throw new Error(`[arena] ${what} already belongs to another optimizer; dispose() that one first`);
      if (p.backend !== this.backend || p.dtype !== this.dtype)
        throw new Error(
          `[arena] ${what} is ${p.dtype} on ${p.backend.name}, parameter 0 ${this.dtype} on ${this.backend.name}: one arena holds one dtype on one backend`,
        );
      if (p.gradFn) throw new Error(`[arena] ${what} is not a leaf (it comes from "${p.gradFn.op}")`);
    });
    const offsets = [0];
    for (const p of params) offsets.push(offsets.at(-1)! + p.numel);
    const total = offsets.at(-1)!;
    const flat = (): Tensor => keep(new Tensor(Storage.alloc(this.backend, this.dtype, Math.max(1, total)), [total]));
    this.#flat = { param: flat(), grad: flat(), m: flat(), v: flat() };
    this.backend.fill(this.#flat.m.view('arena'), 0);
    this.backend.fill(this.#flat.v.view('arena'), 0);
    const slice = (buf: ArenaBuffer, i: number, suffix: string): Tensor => {
      const t = keep(new Tensor(this.#flat[buf].storage, params[i]!.shape, undefined, offsets[i]!));
      t.name = params[i]!.name ? `${params[i]!.name}.${suffix}` : '';
      return t;
    };
    params.forEach((p, i) => {
      p.relocate(this.#flat.param.storage, offsets[i]!);
      const slot = slice('grad', i, 'grad');
      const had = p.grad && !p.grad.disposed ? p.grad : null;
      if (had) {
        this.backend.copy(slot.view('arena'), had.view('arena'));
        had.dispose();
        p.grad = slot;
      } else p.grad = null;
      setGradSlot(p, slot);
      homes.set(p, { arena: this, index: i });
    });
    this.#m = params.map((_, i) => slice('m', i, 'exp_avg'));
    this.#v = params.map((_, i) => slice('v', i, 'exp_avg_sq'));
    this.params = [...params];
    this.offsets = offsets;
  }

  /** The arena holding `p` and p's position in it, or null. */
  static of(p: Tensor): { arena: ParamArena; index: number } | null {
    return homes.get(p) ?? null;
  }

  get numel(): number {
    return this.offsets.at(-1)!;
  }

  /**
   * Whether parameter i has a gradient this step. A gradient assigned by hand (p.grad = t) is copied
   * into the slot first, and t is disposed, as zeroGrad() would have done.
   */
  hasGrad(i: number): boolean {
    this.#live('hasGrad');
    const p = this.params[i]!;
    const g = p.grad;
    if (!g || g.disposed) return false;
    const slot = gradSlot(p)!;
    if (g !== slot) {
      this.backend.copy(slot.view('arena'), g.view('arena'));
      g.dispose();
      p.grad = slot;
    }
    return true;
  }

  /**
   * Maximal runs [from, to) of consecutive parameters in [lo, hi) that are selected (all by default)
   * and have a gradient: the spans one kernel launch can cover.
   */
  gradRuns(lo = 0, hi = this.params.length, selected?: (i: number) => boolean): [number, number][] {
    const runs: [number, number][] = [];
    for (let i = lo; i < hi; i++) {
      if ((selected && !selected(i)) || !this.hasGrad(i)) continue;
      const last = runs.at(-1);
      if (last && last[1] === i) last[1] = i + 1;
      else runs.push([i, i + 1]);
    }
    return runs;
  }

  /** A flat contiguous view of one buffer over parameters [from, to). */
  span(buf: ArenaBuffer, from: number, to: number, op = 'arena'): View {
    this.#live(op);
    const t = this.#flat[buf];
    const offset = this.offsets[from]!;
    return { ...t.view(op), offset, shape: [this.offsets[to]! - offset], strides: [1] };
  }

  /** span() as a tensor handle (registered with the current scope, like any new tensor). */
  spanTensor(buf: ArenaBuffer, from: number, to: number): Tensor {
    this.#live('spanTensor');
    const offset = this.offsets[from]!;
    return new Tensor(this.#flat[buf].storage, [this.offsets[to]! - offset], [1], offset);
  }

  /** Parameter i's moments, shaped like it (the arena's own handles: do not dispose them). */
  moments(i: number): { m: Tensor; v: Tensor } {
    this.#live('moments');
    return { m: this.#m[i]!, v: this.#v[i]! };
  }

  /**
   * Says whether parameter i has a gradient this step, its slot holding it (or not): for gradients
   * written into the slots by other means, such as a sum over data-parallel ranks.
   */
  setHasGrad(i: number, has: boolean): void {
    this.#live('setHasGrad');
    const p = this.params[i]!;
    if (p.grad && p.grad !== gradSlot(p)) p.grad.dispose();
    p.grad = has ? gradSlot(p)! : null;
  }

  /** Drops every parameter's gradient: the next backward copies into the slots instead of adding. */
  zeroGrad(): void {
    this.#live('zeroGrad');
    for (const p of this.params) {
      // A gradient assigned by hand is this optimizer's to free, as before.
      if (p.grad && p.grad !== gradSlot(p)) p.grad.dispose();
      p.grad = null;
    }
  }

  /**
   * Frees the moments and the arena's own handles. Parameters (and a .grad still set) keep their
   * elements alive, as ordinary tensors from now on; their gradients are allocated afresh again.
   */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const p of this.params) {
      const slot = gradSlot(p);
      setGradSlot(p, null);
      homes.delete(p);
      if (slot && p.grad !== slot) slot.dispose();
    }
    for (const t of [...this.#m, ...this.#v, ...Object.values(this.#flat)]) t.dispose();
  }

  #live(op: string): void {
    if (this.#disposed) throw new Error(`[arena] ${op}: the optimizer's arena was disposed`);
  }
}
