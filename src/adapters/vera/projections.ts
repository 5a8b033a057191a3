// VeRA's shared random projections, drawn exactly as PEFT draws them (vera/model.py
// _init_vera_A_vera_B): torch's CPU generator seeded with projection_prng_key, vera_A (r × max_in)
// first, then vera_B (max_out × r) from the same stream, each Kaiming-uniform with bound
// √3·(√2/√fan_in) over its columns, float32 — then rounded to the base model's dtype when that is
// bf16/f16, as PEFT's dtype casting leaves them. Every float equals torch's (FMA recipe by default).

import type { Backend } from '../../backends/backend.js';
import { tensor } from '../../tensor/creation.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../tensor/dtype.js';
import { Generator } from '../../tensor/random.js';
import { keep } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';

/** The storage dtype of the base weights, which decides how PEFT rounds the projections. */
export type BaseDType = 'f32' | 'bf16' | 'f16';

export interface ProjectionOpts {
  /** torch's AVX2/AVX-512 kernels fuse the multiply-add (default); its generic kernel does not. */
  fma?: boolean;
  baseDType?: BaseDType;
}

/** The float32 values of PEFT's vera_A and vera_B for this seed and shape. */
export function projectionValues(
  seed: number | bigint,
  r: number,
  maxIn: number,
  maxOut: number,
  opts: ProjectionOpts = {},
): { a: Float32Array; b: Float32Array } {
  const g = new Generator(seed);
  const bound = (fan: number) => Math.sqrt(3.0) * (Math.SQRT2 / Math.sqrt(fan));
  const a = g.uniform(r * maxIn, -bound(maxIn), bound(maxIn), opts.fma ?? true);
  const b = g.uniform(maxOut * r, -bound(r), bound(r), opts.fma ?? true);
  roundTo(a, opts.baseDType ?? 'f32');
  roundTo(b, opts.baseDType ?? 'f32');
  return { a, b };
}

/** Rounds float32 values through bf16/f16 in place (the base-dtype cast and the float32 upcast). */
export function roundTo(x: Float32Array, dtype: BaseDType): void {
  if (dtype === 'bf16') for (let i = 0; i < x.length; i++) x[i] = bf16ToF32(f32ToBf16(x[i]!));
  else if (dtype === 'f16') for (let i = 0; i < x.length; i++) x[i] = f16ToF32(f32ToF16(x[i]!));
}

/** vera_A [r, maxIn] and vera_B [maxOut, r] as frozen tensors outside any scope. */
export function makeProjections(
  seed: number | bigint,
  r: number,
  maxIn: number,
  maxOut: number,
  opts: ProjectionOpts & { backend?: Backend } = {},
): { A: Tensor; B: Tensor } {
  const { a, b } = projectionValues(seed, r, maxIn, maxOut, opts);
  return {
    A: keep(tensor(a, { shape: [r, maxIn], backend: opts.backend })),
    B: keep(tensor(b, { shape: [maxOut, r], backend: opts.backend })),
  };
}
