// Rotary position embedding settings and angle tables as transformers computes them: the inverse
// frequencies of rope types "default", "linear" and "llama3" (in float32, step by step like torch),
// read from 5.x `rope_parameters` or 4.x `rope_theta` + `rope_scaling`.

import type { Backend } from '../backends/backend.js';
import { arange, tensor } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import { ConfigReader, type HFConfig } from './config-utils.js';

export type RopeType = 'default' | 'linear' | 'llama3';
export const SUPPORTED_ROPE_TYPES: readonly RopeType[] = ['default', 'linear', 'llama3'];

export interface RopeConfig {
  type: RopeType;
  theta: number;
  /** linear and llama3: the context extension factor. */
  factor: number;
  /** llama3 only. */
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

/** The RoPE settings of a config (5.x rope_parameters, or 4.x rope_theta/rope_scaling). */
export function parseRope(config: HFConfig, modelType: string, defaultTheta = 10000): RopeConfig {
  const top = new ConfigReader(config, modelType);
  let params = top.object('rope_parameters');
  let what = `${modelType} rope_parameters`;
  let theta: number;
  if (params) {
    theta = new ConfigReader(params, what).positive(
      'rope_theta',
      top.has('rope_theta') ? top.num('rope_theta') : defaultTheta,
    );
  } else {
    theta = top.positive('rope_theta', defaultTheta);
    params = top.object('rope_scaling');
    what = `${modelType} rope_scaling`;
  }
  const r = new ConfigReader(params ?? {}, what);
  const type = r.has('rope_type') ? r.str('rope_type') : r.has('type') ? r.str('type') : 'default';
  if (!(SUPPORTED_ROPE_TYPES as readonly string[]).includes(type))
    r.fail(
      r.has('rope_type') ? 'rope_type' : 'type',
      `is ${JSON.stringify(type)}, which is not supported (supported rope types: ${SUPPORTED_ROPE_TYPES.join(', ')})`,
    );
  if (r.has('partial_rotary_factor') && r.num('partial_rotary_factor') !== 1)
    r.fail(
      'partial_rotary_factor',
      `is ${r.num('partial_rotary_factor')}; only full rotary embeddings (1.0) are supported`,
    );
  const rope: RopeConfig = {
    type: type as RopeType,
    theta,
    factor: type === 'default' ? 1 : r.positive('factor'),
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 0,
  };
  if (type === 'llama3') {
    rope.lowFreqFactor = r.positive('low_freq_factor');
    rope.highFreqFactor = r.positive('high_freq_factor');
    rope.originalMaxPositionEmbeddings = r.int('original_max_position_embeddings');
    if (rope.highFreqFactor === rope.lowFreqFactor) r.fail('high_freq_factor', 'must differ from low_freq_factor');
  }
  return rope;
}

const f = Math.fround;

/** inv_freq [D/2] for head dimension `dim`, rounded as torch computes it in float32. */
export function inverseFrequencies(rope: RopeConfig, dim: number): Float32Array {
  const half = dim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = f(1 / f(Math.pow(rope.theta, f((2 * i) / dim))));
  if (rope.type === 'linear') for (let i = 0; i < half; i++) inv[i] = f(inv[i]! / rope.factor);
  if (rope.type === 'llama3') llama3Scale(inv, rope);
  return inv;
}

// transformers' _compute_llama3_parameters, with torch's float32 rounding at each tensor op.
function llama3Scale(inv: Float32Array, rope: RopeConfig): void {
  const { factor, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositionEmbeddings: old } = rope;
  const lowWavelen = f(old / lo);
  const highWavelen = f(old / hi);
  for (let i = 0; i < inv.length; i++) {
    const x = inv[i]!;
    const wavelen = f(f(2 * Math.PI) / x);
    const scaled = wavelen > lowWavelen ? f(x / factor) : x;
    const smooth = f(f(f(f(old) / wavelen) - f(lo)) / f(hi - lo));
    const smoothed = f(f(f(f(1 - smooth) * scaled) / factor) + f(smooth * scaled));
    const medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
    inv[i] = medium ? smoothed : scaled;
  }
}

/**
 * cos and sin tables [B or 1, T, D/2] for ops.rope: angles position·inv_freq in float32. `positions` is
 * an i32 [B, T] tensor, or {start, length} for arange(start, start + length) shared by the batch.
 */
export function ropeTables(
  invFreq: Float32Array,
  positions: Tensor | { start: number; length: number },
  backend: Backend,
): { cos: Tensor; sin: Tensor } {
  return scope(() => {
    const pos =
      'start' in positions
        ? ops.reshape(
            arange(positions.start, positions.start + positions.length, 1, { backend, dtype: 'f32' }),
            [1, -1],
          )
        : ops.cast(positions, 'f32'); // (B, T)
    const inv = tensor(invFreq, { backend }); // (D/2)
    const angles = ops.mul(ops.unsqueeze(pos, -1), inv); // (B, T, D/2)
    return { cos: ops.cos(angles), sin: ops.sin(angles) };
  });
}
