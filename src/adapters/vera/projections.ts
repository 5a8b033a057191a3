// VeRA's shared random projections, drawn exactly as PEFT draws them (vera/model.py
// _init_vera_A_vera_B): torch's CPU generator seeded with projection_prng_key, vera_A (r × max_in)
// first, then vera_B (max_out × r) from the same stream, each Kaiming-uniform with bound
// √3·(√2/√fan_in) over its columns, float32 — then rounded to the base model's dtype when that is
// bf16/f16, as PEFT's dtype casting leaves them. Every float equals torch's (FMA recipe by default).
// The VeRA paper's other initialisations (Table 6; not PEFT's) come from the same stream and order; they
// are not torch's draws (its normal_ differs), so such adapters always store their projections.

import type { Backend } from '../../backends/backend.js';
import { tensor } from '../../tensor/creation.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../backends/dtype.js';
import { Generator } from '../../tensor/random.js';
import { keep } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { ProjectionInit } from './config.js';

/** The storage dtype of the base weights, which decides how PEFT rounds the projections. */
export type BaseDType = 'f32' | 'bf16' | 'f16';

export interface ProjectionOpts {
  /** torch's AVX2/AVX-512 kernels fuse the multiply-add (default); its generic kernel does not. */
  fma?: boolean;
  baseDType?: BaseDType;
  /** kaiming_uniform (PEFT's, default), kaiming_normal (std √2/√fan_in) or uniform_0_0.1 (U(0, 0.1)). */
  init?: ProjectionInit;
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
  // torch's kaiming_*_ with gain √2 and fan_in = the columns: maxIn for vera_A (r, maxIn), r for vera_B.
  const std = (fan: number) => Math.SQRT2 / Math.sqrt(fan);
  const draw = (n: number, fan: number): Float32Array => {
    switch (opts.init ?? 'kaiming_uniform') {
      case 'kaiming_uniform':
        return g.uniform(n, -Math.sqrt(3.0) * std(fan), Math.sqrt(3.0) * std(fan), opts.fma ?? true);
      case 'kaiming_normal':
        return g.normal(n, 0, std(fan));
      case 'uniform_0_0.1':
        return g.uniform(n, 0, 0.1, opts.fma ?? true);
    }
  };
  const a = draw(r * maxIn, maxIn);
  const b = draw(maxOut * r, r);
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
