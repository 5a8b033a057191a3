// One block of a model's stack, through activation checkpointing when the model asks for it
// (Module.gradientCheckpointing while training): the block runs without keeping its activations and
// runs again in the backward, costing one more forward per step for the memory of all but the block
// inputs. Every tensor the block reads besides x (RoPE tables, masks) is passed in `more`, so the graph
// keeps it alive until the recomputation.

import { checkpoint } from '../autograd/checkpoint.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';

export function blockForward(
  owner: Module,
  block: Module,
  fn: (x: Tensor, ...more: Tensor[]) => Tensor,
  x: Tensor,
  more: readonly (Tensor | null | undefined)[] = [],
): Tensor {
  const extra = more.filter((t): t is Tensor => Boolean(t));
  if (!owner.gradientCheckpointing || !owner.training) return fn(x, ...extra);
  return checkpoint(
    fn,
    [x, ...extra],
    block.parameters().filter((p) => p.requiresGrad),
  );
}
