// How `vera demo` fine-tunes the shipped base model on the UCI sentiment sentences: the settings every
// method shares and each method's own (learning rates as the paper's recipes scale them for a small
// model). Defined once, for the demo (src/cli/demo.ts) and for the experiments that start from it
// (plan.ts: "as the demo runs it").

import { join } from 'node:path';
import { PACKAGE_ROOT } from '../io/package-root.js';
import type { Method, TrainConfig } from '../train/config.js';

/** The shipped base model, relative to the package root (a TaskSpec's `model`) and absolute. */
export const BASE_MODEL_DIR = 'assets/base-model';
export const BASE_MODEL = join(PACKAGE_ROOT, BASE_MODEL_DIR);

/** Settings every method of the demo shares. */
export const DEMO_COMMON: Partial<TrainConfig> = {
  task: 'classification',
  label_names: ['negative', 'positive'],
  max_length: 64,
  batch_size: 32,
  lr_scheduler: 'linear',
  warmup_ratio: 0.06,
  weight_decay: 0,
  bucket_by_length: true,
  metric: 'accuracy',
  save_total_limit: 1,
};

/** The attention projections the demo adapts (GPT-2's c_attn and attn.c_proj; not mlp.c_proj). */
const ATTENTION = ['attn.c_attn', 'attn.c_proj'];

/**
 * VeRA as the demo runs it: r 256, a seed-only adapter (the projections regenerate bit-exactly from
 * projection_prng_key, in PEFT too), λ at 3e-2 and the head at 5e-3.
 */
export function vera(r = 256, extra: Partial<TrainConfig> = {}): Partial<TrainConfig> {
  return { r, target_modules: ATTENTION, save_projection: false, lr: 3e-2, head_lr: 5e-3, ...extra };
}

/** LoRA as the demo runs it (lr 2e-3, head 5e-3), with lora_alpha = 2r so that the scale α/r stays 2. */
export function lora(r = 16): Partial<TrainConfig> {
  return { r, lora_alpha: 2 * r, target_modules: ATTENTION, lr: 2e-3, head_lr: 5e-3 };
}

/** Head-only training as the demo runs it. */
export const HEAD_ONLY: Partial<TrainConfig> = { lr: 5e-3 };

/** A method's settings in the demo: VeRA r=256, LoRA r=16, anything else as head-only. */
export function demoMethod(method: Method): Partial<TrainConfig> {
  if (method === 'vera') return { method, ...vera() };
  if (method === 'lora') return { method, ...lora() };
  return { method, ...HEAD_ONLY };
}
