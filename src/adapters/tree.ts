// Walking and editing a model's module tree by dotted path ("transformer.h.0.attn.c_attn"), the way
// PEFT replaces target modules with adapter layers, plus a structural clone for modules_to_save.

import { Module } from '../nn/module.js';
import { empty } from '../tensor/creation.js';
import { keep } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import { AdapterError } from './errors.js';

type Container = Record<string, unknown>;

/** The parent container (a module, or an array inside one) and the last path component. */
function locate(root: Module, path: string): [Container, string] {
  const parts = path.split('.');
  let node: unknown = root;
  for (const part of parts.slice(0, -1)) {
    node = (node as Container)[part];
    if (node === undefined || node === null || typeof node !== 'object') {
      throw new AdapterError(`[adapters] No module at "${path}" (stopped at "${part}")`);
    }
  }
  return [node as Container, parts[parts.length - 1]!];
}

export function getModule(root: Module, path: string): Module {
  if (path === '') return root;
  const [parent, last] = locate(root, path);
  const m = parent[last];
  if (!(m instanceof Module)) throw new AdapterError(`[adapters] "${path}" is not a module`);
  return m;
}

/** Puts `module` where the module at `path` was. */
export function setModule(root: Module, path: string, module: Module): void {
  const [parent, last] = locate(root, path);
  if (!(parent[last] instanceof Module)) throw new AdapterError(`[adapters] "${path}" is not a module`);
  parent[last] = module;
}

/**
 * A deep copy of a module's structure with copies of its parameters (kept out of scopes). Works for
 * modules whose state lives in plain fields, as nn layers and model heads do.
 */
export function cloneModule<M extends Module>(m: M): M {
  const copy = Object.create(Object.getPrototypeOf(m) as object) as M;
  for (const [key, value] of Object.entries(m)) (copy as unknown as Container)[key] = cloneValue(value);
  return copy;
}

function cloneValue(v: unknown): unknown {
  if (v instanceof Tensor) return copyTensor(v);
  if (v instanceof Module) return cloneModule(v);
  if (Array.isArray(v)) return v.map(cloneValue);
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, cloneValue(x)]));
  return v;
}

/** A contiguous copy of t on its backend, with its name and requiresGrad, outside any scope. */
export function copyTensor(t: Tensor): Tensor {
  const out = keep(empty(t.shape, { dtype: t.dtype, backend: t.backend }));
  t.backend.copy(out.view('copy'), t.view('copy'));
  out.name = t.name;
  out.requiresGrad = t.requiresGrad;
  return out;
}
