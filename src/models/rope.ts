// Rotary position embedding settings and angle tables as transformers computes them: the inverse
// frequencies of rope types "default", "linear", "llama3" and "yarn" (in float32, step by step like
// torch) and YaRN's attention factor, read from 5.x `rope_parameters` or 4.x `rope_theta` + `rope_scaling`.

import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import { ConfigReader, type HFConfig } from './config-utils.js';
import { positionRange } from './positions.js';

export type RopeType = 'default' | 'linear' | 'llama3' | 'yarn';
export const SUPPORTED_ROPE_TYPES: readonly RopeType[] = ['default', 'linear', 'llama3', 'yarn'];

export interface RopeConfig {
  type: RopeType;
  theta: number;
  /** linear, llama3 and yarn: the context extension factor. */
  factor: number;
  /** llama3 only. */
  lowFreqFactor: number;
  highFreqFactor: number;
  /** llama3 and yarn. */
  originalMaxPositionEmbeddings: number;
  /** yarn only: the rotation counts bounding the ramp between extrapolated and interpolated frequencies. */
  betaFast: number;
  betaSlow: number;
  /** yarn only: floor/ceil the ramp's bounds (transformers' `truncate`, default true). */
  truncate: boolean;
  /** What cos and sin are multiplied by (yarn's attention factor; 1 otherwise). */
  attentionFactor: number;
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
    factor: 1,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 0,
    betaFast: 32,
    betaSlow: 1,
    truncate: true,
    attentionFactor: 1,
  };
  if (type === 'yarn') {
    yarnSettings(rope, r, top);
    return rope;
  }
  if (type !== 'default') rope.factor = r.positive('factor');
  if (type === 'llama3') {
    rope.lowFreqFactor = r.positive('low_freq_factor');
    rope.highFreqFactor = r.positive('high_freq_factor');
    rope.originalMaxPositionEmbeddings = r.int('original_max_position_embeddings');
    if (rope.highFreqFactor === rope.lowFreqFactor) r.fail('high_freq_factor', 'must differ from low_freq_factor');
  }
  return rope;
}

// transformers' _compute_yarn_parameters: the settings, and the attention factor (computed in float64).
function yarnSettings(rope: RopeConfig, r: ConfigReader, top: ConfigReader): void {
  rope.originalMaxPositionEmbeddings = r.int('original_max_position_embeddings');
  // DeepSeek-V3 style configs leave factor out: the ratio of the context lengths stands in for it.
  rope.factor = r.has('factor')
    ? r.positive('factor')
    : top.int('max_position_embeddings') / rope.originalMaxPositionEmbeddings;
  // transformers reads `get(key) or default`: absent, null and 0 all mean the default.
  const orDefault = (key: string, fallback: number) => (r.has(key) && r.num(key) !== 0 ? r.positive(key) : fallback);
  rope.betaFast = orDefault('beta_fast', 32);
  rope.betaSlow = orDefault('beta_slow', 1);
  rope.truncate = r.bool('truncate', true);
  const mscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
  if (r.has('attention_factor')) rope.attentionFactor = r.num('attention_factor');
  else {
    const m = r.num('mscale', 0);
    const all = r.num('mscale_all_dim', 0);
    rope.attentionFactor = m && all ? mscale(rope.factor, m) / mscale(rope.factor, all) : mscale(rope.factor);
  }
}

const f = Math.fround;

/** inv_freq [D/2] for head dimension `dim`, rounded as torch computes it in float32. */
export function inverseFrequencies(rope: RopeConfig, dim: number): Float32Array {
  const half = dim / 2;
  if (rope.type === 'yarn') return yarnFrequencies(rope, dim);
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

// transformers' _compute_yarn_parameters: frequencies blended by a linear ramp over the dimensions, from
// extrapolated (the original ones) at high frequencies to interpolated (divided by factor) at low ones.
function yarnFrequencies(rope: RopeConfig, dim: number): Float32Array {
  const { theta, factor, betaFast, betaSlow, originalMaxPositionEmbeddings: old } = rope;
  const correctionDim = (rotations: number) =>
    (dim * Math.log(old / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
  let low = correctionDim(betaFast);
  let high = correctionDim(betaSlow);
  if (rope.truncate) [low, high] = [Math.floor(low), Math.ceil(high)];
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001; // as transformers: no division by zero
  const span = f(high - low);
  const inv = new Float32Array(dim / 2);
  for (let i = 0; i < inv.length; i++) {
    const pos = f(Math.pow(theta, f((2 * i) / dim)));
    const extrapolated = f(1 / pos);
    const interpolated = f(1 / f(factor * pos));
    const ramp = Math.min(Math.max(f(f(i - low) / span), 0), 1);
    const keep = f(1 - ramp); // the extrapolation factor
    inv[i] = f(f(interpolated * f(1 - keep)) + f(extrapolated * keep));
  }
  return inv;
}

/**
 * cos and sin tables [B or 1, T, D/2] for ops.rope: angles position·inv_freq in float32. `invFreq` is
 * the [D/2] f32 tensor of inverseFrequencies on the backend to compute on (kept by the model, so a
 * forward uploads nothing); `positions` is an i32 [B, T] tensor, or {start, length} for
 * arange(start, start + length) shared by the batch.
 */
export function ropeTables(
  invFreq: Tensor,
  positions: Tensor | { start: number; length: number },
  attentionFactor = 1,
): { cos: Tensor; sin: Tensor } {
  return scope(() => {
    const pos =
      'start' in positions
        ? ops.reshape(positionRange(invFreq.backend, positions.start, positions.length, 'f32'), [1, -1])
        : ops.cast(positions, 'f32'); // (B, T)
    const angles = ops.mul(ops.unsqueeze(pos, -1), invFreq); // (B, T, D/2)
    if (attentionFactor === 1) return { cos: ops.cos(angles), sin: ops.sin(angles) };
    // YaRN scales both tables (transformers multiplies in float32).
    const scale = Math.fround(attentionFactor);
    return { cos: ops.mulScalar(ops.cos(angles), scale), sin: ops.mulScalar(ops.sin(angles), scale) };
  });
}
