// Creating tensors: uninitialised, constant, from host data, ranges and random draws. Data is made on
// the host where it has to be (user arrays, seeded draws) and uploaded once.

import type { Backend } from '../backends/backend.js';
import { defaultBackend } from '../backends/registry.js';
import { type DType, type HostArray, hostArray, hostArrayMatches } from '../backends/dtype.js';
import { DTypeError, ShapeError, fmtShape } from './errors.js';
import { type Generator, defaultGenerator } from './random.js';
import { checkShape, numel } from './shape.js';
import { Storage } from './storage.js';
import { Tensor } from './tensor.js';

export interface CreateOpts {
  dtype?: DType;
  backend?: Backend;
  requiresGrad?: boolean;
}

function resolve(opts: CreateOpts | undefined): { dtype: DType; backend: Backend } {
  const backend = opts?.backend ?? defaultBackend();
  const dtype = opts?.dtype ?? 'f32';
  if (!backend.dtypes.includes(dtype))
    throw new DTypeError(`[create] Backend "${backend.name}" does not support dtype ${dtype}`);
  return { dtype, backend };
}

function finish(t: Tensor, opts: CreateOpts | undefined): Tensor {
  return opts?.requiresGrad ? t.setRequiresGrad(true) : t;
}

/** An uninitialised contiguous tensor. */
export function empty(shape: readonly number[], opts?: CreateOpts): Tensor {
  checkShape('empty', shape);
  const { dtype, backend } = resolve(opts);
  return finish(new Tensor(Storage.alloc(backend, dtype, numel(shape)), shape), opts);
}

export function full(shape: readonly number[], value: number, opts?: CreateOpts): Tensor {
  const t = empty(shape, { ...opts, requiresGrad: false });
  t.backend.fill(t.view('full'), value);
  return finish(t, opts);
}

export function zeros(shape: readonly number[], opts?: CreateOpts): Tensor {
  return full(shape, 0, opts);
}

export function ones(shape: readonly number[], opts?: CreateOpts): Tensor {
  return full(shape, 1, opts);
}

/** A tensor of `like`'s shape, dtype and backend (options override). */
export function zerosLike(like: Tensor, opts?: CreateOpts): Tensor {
  return zeros(like.shape, { dtype: like.dtype, backend: like.backend, ...opts });
}

export function fullLike(like: Tensor, value: number, opts?: CreateOpts): Tensor {
  return full(like.shape, value, { dtype: like.dtype, backend: like.backend, ...opts });
}

export type NestedNumbers = number | boolean | readonly NestedNumbers[];

/**
 * A tensor from host data: a typed array of the dtype's kind (with `shape`), or nested arrays of numbers
 * (shape inferred). Plain numbers are converted to the dtype (f32 unless given).
 */
export function tensor(data: NestedNumbers | HostArray, opts?: CreateOpts & { shape?: readonly number[] }): Tensor {
  const { dtype, backend } = resolve(opts);
  let shape: readonly number[];
  let host: HostArray;
  if (ArrayBuffer.isView(data)) {
    shape = opts?.shape ?? [data.length];
    if (!hostArrayMatches(dtype, data)) {
      throw new DTypeError(
        `[tensor] A ${data.constructor.name} cannot hold dtype ${dtype}; pass the matching typed array or plain numbers`,
      );
    }
    host = data;
  } else {
    const inferred = inferShape(data);
    shape = opts?.shape ?? inferred;
    const flat = (Array.isArray(data) ? (data as unknown[]).flat(Infinity) : [data]) as (number | boolean)[];
    host = fromNumbers(dtype, flat);
  }
  checkShape('tensor', shape);
  if (numel(shape) !== host.length) {
    throw new ShapeError(`[tensor] ${host.length} values do not fill shape ${fmtShape(shape)}`);
  }
  const t = new Tensor(Storage.alloc(backend, dtype, host.length), shape);
  backend.upload(t.storage.buffer('tensor'), dtype, 0, host);
  return finish(t, opts);
}

function inferShape(data: NestedNumbers): number[] {
  const shape: number[] = [];
  let x: NestedNumbers = data;
  while (Array.isArray(x)) {
    shape.push(x.length);
    x = (x as readonly NestedNumbers[])[0] as NestedNumbers;
  }
  return shape;
}

function fromNumbers(dtype: DType, flat: readonly (number | boolean)[]): HostArray {
  const out = hostArray(dtype, flat.length);
  for (let i = 0; i < flat.length; i++) {
    const v = Number(flat[i]);
    if (out instanceof BigInt64Array) out[i] = BigInt(Math.trunc(v));
    else if (dtype === 'bf16' || dtype === 'f16')
      throw new DTypeError(`[tensor] Create ${dtype} tensors by casting an f32 tensor`);
    else (out as Float64Array)[i] = dtype === 'bool' ? +(v !== 0) : v;
  }
  return out;
}

/** [start, end) in steps (like torch.arange); i32 unless a dtype is given. */
export function arange(start: number, end?: number, step = 1, opts?: CreateOpts): Tensor {
  const [lo, hi] = end === undefined ? [0, start] : [start, end];
  if (step === 0) throw new Error('[arange] Step must not be 0');
  const n = Math.max(0, Math.ceil((hi - lo) / step));
  const dtype = opts?.dtype ?? 'i32';
  const host = hostArray(dtype, n);
  for (let i = 0; i < n; i++) (host as Float64Array)[i] = lo + i * step;
  return tensor(host, { ...opts, dtype, shape: [n] });
}

export interface RandomOpts extends CreateOpts {
  generator?: Generator;
}

/** Uniform draws in [low, high) (torch's float32 uniform_ recipe). */
export function rand(shape: readonly number[], opts?: RandomOpts & { low?: number; high?: number }): Tensor {
  const g = opts?.generator ?? defaultGenerator;
  const data = g.uniform(numel(shape), opts?.low ?? 0, opts?.high ?? 1);
  return floatTensor(data, shape, opts);
}

/** Normal draws N(mean, std²). */
export function randn(shape: readonly number[], opts?: RandomOpts & { mean?: number; std?: number }): Tensor {
  const g = opts?.generator ?? defaultGenerator;
  const data = g.normal(numel(shape), opts?.mean ?? 0, opts?.std ?? 1);
  return floatTensor(data, shape, opts);
}

function floatTensor(data: Float32Array, shape: readonly number[], opts: CreateOpts | undefined): Tensor {
  if (opts?.dtype === 'f64') return tensor(Float64Array.from(data), { ...opts, shape });
  if (opts?.dtype && opts.dtype !== 'f32')
    throw new DTypeError(`[random] Random tensors are f32 or f64, not ${opts.dtype}`);
  return tensor(data, { ...opts, dtype: 'f32', shape });
}
