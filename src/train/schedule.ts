// Learning-rate schedules with linear warmup, as transformers' get_{linear,cosine,constant}_schedule_with_warmup
// compute them: the multiplier of the base rate for the update with 0-based index `step` (so with warmup
// the first update has rate 0, exactly as a transformers Trainer run).

import type { ScheduleName } from './config.js';

export interface Schedule {
  name: ScheduleName;
  warmupSteps: number;
  totalSteps: number;
}

/** Warmup steps: warmup_steps when > 0, else ⌈warmup_ratio · total⌉ (TrainingArguments.get_warmup_steps). */
export function warmupSteps(warmup: number, ratio: number, totalSteps: number): number {
  return warmup > 0 ? warmup : Math.ceil(ratio * totalSteps);
}

/** The multiplier of the base learning rate at update `step` (0-based). */
export function lrFactor(s: Schedule, step: number): number {
  if (step < s.warmupSteps) return step / Math.max(1, s.warmupSteps);
  const progress = (step - s.warmupSteps) / Math.max(1, s.totalSteps - s.warmupSteps);
  switch (s.name) {
    case 'constant':
      return 1;
    case 'linear':
      return Math.max(0, (s.totalSteps - step) / Math.max(1, s.totalSteps - s.warmupSteps));
    case 'cosine':
      // Half a cosine period from 1 to 0 over the steps after warmup (num_cycles = 0.5).
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
  }
}
