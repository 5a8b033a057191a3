// Scopes bound tensor lifetimes in loops (TF.js's tidy): every tensor created inside scope(fn) is
// disposed when fn returns, except the tensors fn returns (moved to the enclosing scope) and those
// passed to keep(). A training step wrapped in scope() therefore frees its activations, its graph and
// its temporaries, while parameters and their .grad (kept by the autograd engine) survive.
//
// Scopes bound synchronous work only (a Promise result is an error): an async read goes outside them,
// on a tensor the scope returned or one passed to keep():
//   const logits = noGrad(() => scope(() => model.forward(inputs))); // survives the scope
//   const read = logits.data(); // the read is ordered here...
//   logits.dispose(); // ...so the tensor can go at once
//   const host = await read; // the event loop runs while the device finishes

import type { Tensor } from './tensor.js';

const stack: Set<Tensor>[] = [];

/** Registers a new tensor with the innermost scope (no-op outside any scope). */
export function track(t: Tensor): void {
  stack[stack.length - 1]?.add(t);
}

/** Removes a tensor from every open scope so it outlives them; returns it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of stack) s.delete(t);
  return t;
}

/** Runs fn; disposes the tensors it created except those reachable from its result. */
export function scope<T>(fn: () => T): T {
  const own = new Set<Tensor>();
  stack.push(own);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    for (const t of own) t.dispose();
    throw e;
  }
  stack.pop();
  if (result instanceof Promise) {
    for (const t of own) t.dispose();
    throw new Error('[scope] The function returned a Promise; scope() only bounds synchronous work');
  }
  const survivors = new Set<Tensor>();
  collectTensors(result, survivors, 0);
  const parent = stack[stack.length - 1];
  for (const t of own) {
    if (survivors.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Number of open scopes (for tests and diagnostics). */
export function scopeDepth(): number {
  return stack.length;
}

function collectTensors(x: unknown, into: Set<Tensor>, depth: number): void {
  if (x === null || typeof x !== 'object' || depth > 8) return;
  if (isTensor(x)) {
    into.add(x);
    return;
  }
  if (Array.isArray(x)) {
    for (const v of x) collectTensors(v, into, depth + 1);
  } else if (x instanceof Map) {
    for (const v of x.values()) collectTensors(v, into, depth + 1);
  } else if (Object.getPrototypeOf(x) === Object.prototype) {
    for (const v of Object.values(x)) collectTensors(v, into, depth + 1);
  }
}

function isTensor(x: object): x is Tensor {
  return (x as { [TENSOR_BRAND]?: true })[TENSOR_BRAND] === true;
}

/** Brand set on Tensor.prototype so scope() recognises tensors without importing the class. */
export const TENSOR_BRAND: unique symbol = Symbol('vera.tensor');
