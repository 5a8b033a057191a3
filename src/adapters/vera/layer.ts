// The VeRA layer (PEFT's vera/layer.py Linear): y = base(x) + λ_b ⊙ (B_s · (λ_d ⊙ (A_s · dropout(x)))),
// where A_s = vera_A[:, :in] and B_s = vera_B[:out, :] are slices of the projections shared by every
// layer of the model, and only λ_b (out) and λ_d (r) are trained — or, in the VeRA paper's ablations
// (VeraConfig.experimental), only one of them while the other stays fixed.

import { noGrad } from '../../autograd/graph.js';
import type { LinearLike } from '../../nn/layers.js';
import { type RowAdapters, rowVectors } from '../mixed.js';
import * as ops from '../../ops/index.js';
import { full } from '../../tensor/creation.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../backends/dtype.js';
import { keep } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { AdapterError } from '../errors.js';
import { AdapterLayer } from '../layer.js';
import type { BaseDType } from './projections.js';
import type { SharedInputProjection } from './shared-input.js';

/** The projections one adapter uses (every adapter of a model shares one pair). */
export interface VeraProjections {
  A: Tensor; // (R, max_in)
  B: Tensor; // (max_out, R)
}

/**
 * bf16 copies of the projections, for layers whose base weight is stored in bf16: their GEMMs then
 * compute in bf16 with the base's (as torch.autocast casts A and B), and the f32 A and B stay the masters
 * that merging and saving read. Made on first use, kept; dropped when the projections change.
 */
const bf16Copies = new WeakMap<VeraProjections, VeraProjections>();

export function bf16Projections(p: VeraProjections): VeraProjections {
  let c = bf16Copies.get(p);
  if (!c || c.A.disposed || c.B.disposed) {
    c = noGrad(() => ({ A: keep(ops.cast(p.A, 'bf16')), B: keep(ops.cast(p.B, 'bf16')) }));
    bf16Copies.set(p, c);
  }
  return c;
}

/** Frees the bf16 copies of `p` (its values were overwritten, or it is being disposed). */
export function dropBf16Projections(p: VeraProjections): void {
  const c = bf16Copies.get(p);
  if (!c) return;
  c.A.dispose();
  c.B.dispose();
  bf16Copies.delete(p);
}

export interface VeraLayerInit {
  r: number;
  dropout: number;
  dInitial: number;
  initWeights: boolean;
  baseDType: BaseDType;
  /** Ablations (default true): a λ that is not trained holds `fixedValue` (default 1) and is frozen. */
  trainB?: boolean;
  trainD?: boolean;
  fixedValue?: number;
}

/** The float32 value a parameter initialised to x holds after PEFT's cast to the base dtype and back. */
function initValue(x: number, dtype: BaseDType): number {
  if (dtype === 'bf16') return bf16ToF32(f32ToBf16(x));
  if (dtype === 'f16') return f16ToF32(f32ToF16(x));
  return Math.fround(x);
}

export class VeraLinear extends AdapterLayer {
  vera_lambda_b = new Map<string, Tensor>(); // adapter → (out)
  vera_lambda_d = new Map<string, Tensor>(); // adapter → (R)
  #projections: Map<string, VeraProjections>;
  #dropout = new Map<string, number>();
  /** The λ vectors an ablation keeps fixed (they are saved like the others but never trained). */
  #fixed = new Set<Tensor>();

  #shared: SharedInputProjection;

  /**
   * `projections` is the model-wide map from adapter name to its (shared) A and B; `shared` the
   * model-wide cache through which layers reading the same input compute A_s·x once.
   */
  constructor(
    base: LinearLike,
    path: string,
    projections: Map<string, VeraProjections>,
    shared: SharedInputProjection,
  ) {
    super(base, path);
    this.#projections = projections;
    this.#shared = shared;
  }

  adapterNames(): string[] {
    return [...this.vera_lambda_d.keys()];
  }

  /** Adds an adapter's λ vectors (PEFT's update_layer): λ_b = 0, λ_d = d_initial, or ones/randn-free test values. */
  addAdapter(name: string, init: VeraLayerInit): void {
    const p = this.#projections.get(name);
    if (!p) throw new AdapterError(`[vera] Adapter "${name}" has no projections`);
    const [r, maxIn] = p.A.shape as [number, number];
    const maxOut = p.B.shape[0]!;
    if (maxIn < this.inFeatures) {
      throw new AdapterError(
        `[vera] vera_A has a size of ${maxIn} but ${this.inFeatures} or greater is required; this probably happened because an additional VeRA adapter was added after the first one with incompatible shapes.`,
      );
    }
    if (maxOut < this.outFeatures) {
      throw new AdapterError(
        `[vera] vera_B has a size of ${maxOut} but ${this.outFeatures} or greater is required; this probably happened because an additional VeRA adapter was added after the first one with incompatible shapes.`,
      );
    }
    if (r !== init.r) {
      throw new AdapterError(
        `[vera] Adapter "${name}" has r = ${init.r} but the shared projections have rank ${r}; all VeRA adapters of a model must share r (add the larger one first)`,
      );
    }
    const backend = this.base_layer.weight.backend;
    const trainB = init.trainB ?? true;
    const trainD = init.trainD ?? true;
    const fixed = initValue(init.fixedValue ?? 1, init.baseDType);
    const bValue = !trainB ? fixed : init.initWeights ? 0 : 1;
    const dValue = !trainD ? fixed : init.initWeights ? initValue(init.dInitial, init.baseDType) : 1;
    const b = keep(full([this.outFeatures], bValue, { backend })).setRequiresGrad(trainB);
    const d = keep(full([init.r], dValue, { backend })).setRequiresGrad(trainD);
    if (!trainB) this.#fixed.add(b);
    if (!trainD) this.#fixed.add(d);
    this.vera_lambda_b.set(name, b);
    this.vera_lambda_d.set(name, d);
    this.#dropout.set(name, init.dropout);
    if (!this.activeAdapters.includes(name) && this.activeAdapters.length === 0) this.activeAdapters = [name];
  }

  /** The λ vectors of an adapter that an ablation keeps fixed (saved like the others, never trained). */
  override fixedTensors(name: string): Tensor[] {
    return [this.vera_lambda_b.get(name), this.vera_lambda_d.get(name)].filter(
      (t): t is Tensor => t !== undefined && this.#fixed.has(t),
    );
  }

  deleteAdapter(name: string): void {
    if (this.mergedAdapters.includes(name)) this.unmerge();
    for (const t of [this.vera_lambda_b.get(name), this.vera_lambda_d.get(name)]) if (t) this.#fixed.delete(t);
    this.vera_lambda_b.get(name)?.dispose();
    this.vera_lambda_d.get(name)?.dispose();
    this.vera_lambda_b.delete(name);
    this.vera_lambda_d.delete(name);
    this.#dropout.delete(name);
    this.activeAdapters = this.activeAdapters.filter((a) => a !== name);
  }

  /** A_s (R, in) and B_s (out, R): views into the shared projections (f32: merging reads these). */
  #slices(name: string): [Tensor, Tensor] {
    const p = this.#projections.get(name)!;
    return [ops.slice(p.A, 1, 0, this.inFeatures), ops.slice(p.B, 0, 0, this.outFeatures)];
  }

  /** The projections the forward multiplies by: bf16 copies over a bf16 base, else the f32 ones. */
  #operands(name: string): VeraProjections {
    const p = this.#projections.get(name)!;
    return this.base_layer.weight.dtype === 'bf16' ? bf16Projections(p) : p;
  }

  /** B_s (out, R): a view into the shared projection. */
  #sliceB(name: string): Tensor {
    return ops.slice(this.#operands(name).B, 0, 0, this.outFeatures);
  }

  /** h = A_s·x (..., R) on an input no dropout touches, through the model-wide cache. */
  #project(name: string, x: Tensor): Tensor {
    return this.#shared.project(x, this.#operands(name).A, this.inFeatures);
  }

  protected contribution(name: string, x: Tensor): Tensor {
    return this.#scaled(name, x);
  }

  /** The base output plus λ_b ⊙ (…) in one pass where the output is scaled (scaledLinear's addTo). */
  protected override addContribution(name: string, x: Tensor, y: Tensor): Tensor {
    return this.#scaled(name, x, y);
  }

  #scaled(name: string, x: Tensor, addTo?: Tensor): Tensor {
    const p = this.#dropout.get(name) ?? 0;
    // Dropout draws its own mask in every layer (PEFT's per-layer nn.Dropout): nothing to share then.
    const h =
      p > 0 && this.training
        ? ops.linear(ops.dropout(x, p, true), ops.slice(this.#operands(name).A, 1, 0, this.inFeatures))
        : this.#project(name, x); // (..., R)
    // λ_b ⊙ (B_s·(λ_d ⊙ h)): scaledLinear may fold λ_b into B_s where GEMMs are cheap (a GPU), and then
    // keeps only the shared h for the backward, not one λ_d ⊙ h per target.
    return ops.scaledLinear(
      h,
      this.#sliceB(name),
      this.vera_lambda_b.get(name)!,
      this.#slices(name)[1],
      this.vera_lambda_d.get(name)!,
      addTo,
    );
  }

  /**
   * Every adapter of a model shares A and B, so a mixed batch needs no more than one adapter does:
   * h = A_s·x once, scaled per row by that row's λ_d (zeros for rows without an adapter here), then B_s·h
   * scaled per row by its λ_b. Inference only: no dropout, so h is shared with the other layers reading x.
   */
  protected override mixedContribution(rows: RowAdapters, x: Tensor): Tensor | null {
    const first = rows.find((n): n is string => n !== null && this.vera_lambda_d.has(n));
    if (first === undefined) return null;
    const r = this.vera_lambda_d.get(first)!.shape[0]!;
    const d = rowVectors(rows, (n) => this.vera_lambda_d.get(n), r, x.rank, x);
    const lb = rowVectors(rows, (n) => this.vera_lambda_b.get(n), this.outFeatures, x.rank, x);
    return ops.mul(ops.linear(ops.mul(this.#project(first, x), d), this.#sliceB(first)), lb);
  }

  deltaWeight(name: string): Tensor {
    const [a, b] = this.#slices(name);
    // (λ_b ⊙ B_s) · (λ_d ⊙ A_s): (out, R) · (R, in)
    const lb = ops.unsqueeze(this.vera_lambda_b.get(name)!, 1);
    const ld = ops.unsqueeze(this.vera_lambda_d.get(name)!, 1);
    const delta = ops.matmul(ops.mul(b, lb), ops.mul(a, ld));
    return this.base_layer.fanInFanOut ? ops.contiguous(ops.transpose(delta)) : delta;
  }
}
