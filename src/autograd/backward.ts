// The backward walk. Starting from a scalar (or a tensor with a given gradient), it visits only the
// nodes on a path to tensors that require grad, in reverse topological order, calls each rule with
// the inputs that need gradients, accumulates into leaves' .grad (kept out of scopes, or an
// optimizer's arena slot: setGradSlot) and frees intermediate gradients as soon as they are consumed. The graph is freed afterwards unless
// retainGraph is set; a second backward through a freed graph throws GraphFreedError.

import type { DType } from '../backends/dtype.js';
import { GraphFreedError, ShapeError, fmtShape } from '../tensor/errors.js';
import type { GradNode } from '../tensor/grad-node.js';
import { keep } from '../tensor/scope.js';
import { shapesEqual } from '../tensor/shape.js';
import { Storage } from '../tensor/storage.js';
import { Tensor, inBackward } from '../tensor/tensor.js';
import { noGrad } from './graph.js';

export interface BackwardOpts {
  /** Gradient of `root` (default: 1 for a one-element root). */
  grad?: Tensor;
  /** Keep the graph so backward can run through it again. */
  retainGraph?: boolean;
}

/** Accumulates d(root)/d(leaf) into every leaf's .grad that requires grad. */
export function backward(root: Tensor, opts: BackwardOpts = {}): void {
  if (!root.requiresGrad)
    throw new Error(
      `[backward] Tensor of shape ${fmtShape(root.shape)} does not require grad (no input of its graph requires grad, or it was computed under noGrad)`,
    );
  noGrad(() => inBackward(() => run(root, opts)));
}

function run(root: Tensor, opts: BackwardOpts): void {
  let seed: Tensor;
  if (opts.grad) {
    if (!shapesEqual(opts.grad.shape, root.shape)) {
      throw new ShapeError(
        `[backward] Gradient of shape ${fmtShape(opts.grad.shape)} does not match the root's ${fmtShape(root.shape)}`,
      );
    }
    seed = opts.grad;
  } else {
    if (root.numel !== 1)
      throw new ShapeError(
        `[backward] Implicit gradient needs a one-element root, got ${fmtShape(root.shape)}; pass opts.grad`,
      );
    seed = filled(root, 1);
  }
  if (!root.gradFn) {
    accumulateLeaf(root, seed, opts.grad !== undefined);
    return;
  }
  const order = topoOrder(root.gradFn);
  // Gradients waiting at each node, one slot per output of the node.
  const grads = new Map<GradNode, (Tensor | null)[]>();
  const pending = (node: GradNode) => {
    let slots = grads.get(node);
    if (!slots) grads.set(node, (slots = node.outShapes.map(() => null)));
    return slots;
  };
  pending(root.gradFn)[root.gradOutput] = seed;
  const borrowedSeed = opts.grad !== undefined;
  for (const node of order) {
    const dys = grads.get(node);
    grads.delete(node);
    if (!dys || dys.every((d) => d === null)) continue; // no gradient reached this node
    const rule = node.backwardFn;
    if (!rule) {
      throw new GraphFreedError(
        `[backward] The graph through "${node.op}" (output ${fmtShape(node.outShapes[0]!)}) was already freed by an earlier backward(); pass { retainGraph: true } to the first call to backpropagate twice`,
      );
    }
    const inputGrads = rule(dys, node.needs);
    if (inputGrads.length !== node.inputs.length) {
      throw new Error(
        `[backward] Rule of "${node.op}" returned ${inputGrads.length} gradients for ${node.inputs.length} inputs`,
      );
    }
    // Rules may pass a dy through or return one tensor for several inputs: give each use its own
    // handle (a view sharing the storage) so every consumer can dispose what it receives.
    const used = new Set<Tensor>(dys.filter((d): d is Tensor => d !== null));
    const handles = inputGrads.map((g) => {
      if (!g) return null;
      if (!used.has(g)) return (used.add(g), g);
      return new Tensor(g.storage, g.shape, g.strides, g.offset);
    });
    for (const dy of dys) if (dy && (dy !== seed || !borrowedSeed)) dy.dispose();
    for (let i = 0; i < node.inputs.length; i++) {
      const g = handles[i];
      const input = node.inputs[i]!;
      if (!g) continue;
      if (!node.needs[i]) {
        g.dispose();
        continue;
      }
      if (!shapesEqual(g.shape, input.shape)) {
        throw new ShapeError(
          `[backward] Rule of "${node.op}" returned a gradient of shape ${fmtShape(g.shape)} for input ${i} of shape ${fmtShape(input.shape)}`,
        );
      }
      if (input.gradFn) {
        const slots = pending(input.gradFn);
        const prev = slots[input.gradOutput];
        const gi = ofDType(g, input.dtype);
        slots[input.gradOutput] = prev ? accumulate(prev, gi) : gi;
      } else if (input.requiresGrad) {
        accumulateLeaf(input, g, false);
      } else g.dispose();
    }
    if (!opts.retainGraph) node.free();
  }
  for (const slots of grads.values()) for (const g of slots) g?.dispose();
}

/** Nodes reachable from `root` through inputs that require grad, root first, inputs after consumers. */
function topoOrder(root: GradNode): GradNode[] {
  const post: GradNode[] = [];
  const seen = new Set<GradNode>([root]);
  const stack: [GradNode, number][] = [[root, 0]];
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [node, i] = top;
    if (i < node.inputs.length) {
      top[1]++;
      const child = node.needs[i] ? node.inputs[i]!.gradFn : null;
      if (child && !seen.has(child)) {
        seen.add(child);
        stack.push([child, 0]);
      }
    } else {
      post.push(node);
      stack.pop();
    }
  }
  return post.reverse();
}

function filled(like: Tensor, value: number): Tensor {
  const t = new Tensor(Storage.alloc(like.backend, like.dtype, like.numel), like.shape);
  like.backend.fill(t.view('backward'), value);
  return t;
}

/**
 * g in `dtype` (g itself when it has it; else a converted copy, g disposed): every gradient reaching a
 * node has the dtype of the tensor it is the gradient of (a bf16 activation gets a bf16 gradient, as in
 * torch), whatever dtype its consumer's rule computed it in. Leaves convert as they accumulate.
 */
function ofDType(g: Tensor, dtype: DType): Tensor {
  if (g.dtype === dtype) return g;
  const out = new Tensor(Storage.alloc(g.backend, dtype, g.numel), g.shape);
  g.backend.copy(out.view('backward'), g.view('backward'));
  g.dispose();
  return out;
}

/** a + b into a fresh tensor (both are disposed). */
function accumulate(a: Tensor, b: Tensor): Tensor {
  const out = new Tensor(Storage.alloc(a.backend, a.dtype, a.numel), a.shape);
  a.backend.binary('add', out.view('backward'), a.view('backward'), b.view('backward'));
  a.dispose();
  b.dispose();
  return out;
}

/**
 * Where backward puts a leaf's gradient when an optimizer keeps its gradients in one flat buffer
 * (src/optim/arena.ts): a kept, contiguous view of the leaf's shape, written in place every step.
 */
const gradSlots = new WeakMap<Tensor, Tensor>();

/** Makes backward accumulate `leaf`'s gradient into `slot` (null: allocate a fresh .grad, the default). */
export function setGradSlot(leaf: Tensor, slot: Tensor | null): void {
  if (slot === null) {
    gradSlots.delete(leaf);
    return;
  }
  if (!shapesEqual(slot.shape, leaf.shape) || !slot.isContiguous || slot.dtype !== leaf.dtype)
    throw new ShapeError(
      `[backward] A gradient slot must be a contiguous ${leaf.dtype} view of the leaf's shape ${fmtShape(leaf.shape)}, got ${slot.dtype} ${fmtShape(slot.shape)}`,
    );
  gradSlots.set(leaf, slot);
}

/**
 * The leaf's gradient slot, or null. A handle disposed by its user (module.dispose() disposes .grad)
 * is replaced by a new one over the same elements, which the slot's owner keeps alive.
 */
export function gradSlot(leaf: Tensor): Tensor | null {
  const slot = gradSlots.get(leaf);
  if (!slot) return null;
  if (!slot.disposed) return slot;
  if (slot.storage.freed) {
    gradSlots.delete(leaf);
    return null;
  }
  const fresh = keep(new Tensor(slot.storage, slot.shape, slot.strides, slot.offset));
  fresh.name = slot.name;
  gradSlots.set(leaf, fresh);
  return fresh;
}

/**
 * leaf.grad += g, kept out of any scope so it survives the training step. With no live .grad the
 * first gradient is copied (not added to zeros, so the bits are g's); a leaf with a slot gets that
 * view as its .grad, so an optimizer's arena receives gradients without any allocation.
 */
function accumulateLeaf(leaf: Tensor, g: Tensor, borrowed: boolean): void {
  const b = leaf.backend;
  const slot = gradSlot(leaf);
  const current = leaf.grad && !leaf.grad.disposed ? leaf.grad : null;
  if (current === slot && slot) {
    const sv = slot.view('backward');
    b.binary('add', sv, sv, g.view('backward'));
  } else if (slot) {
    // A gradient set by hand (or left from before the slot existed) joins the slot: slot = current + g.
    const sv = slot.view('backward');
    if (current) {
      b.binary('add', sv, current.view('backward'), g.view('backward'));
      current.dispose();
    } else b.copy(sv, g.view('backward'));
    leaf.grad = slot;
  } else if (current) {
    const gv = current.view('backward');
    b.binary('add', gv, gv, g.view('backward'));
  } else {
    // A fresh contiguous tensor that owns its data (g may be a view of something else).
    const own = new Tensor(Storage.alloc(b, leaf.dtype, leaf.numel), leaf.shape);
    b.copy(own.view('backward'), g.view('backward'));
    own.name = leaf.name ? `${leaf.name}.grad` : '';
    leaf.grad = keep(own);
  }
  if (!borrowed) g.dispose();
}
