// The experiments of docs/EXPERIMENTS.md as data: the task (data and settings every run shares), and
// per section the runs (a label, a method and its options) and the seeds. The runner trains each run
// once per seed through the trainer API; the report reads the cached results back.

import type { Method, TrainConfig } from '../train/config.js';
import { BASE_MODEL_DIR, DEMO_COMMON, HEAD_ONLY, lora, vera } from './demo-recipe.js';

/** Where a task's data comes from: the UCI sentences, split 90/10 as `vera demo` splits them. */
export interface DataSpec {
  source: 'uci-sentiment';
  /** Seed of the train/validation split (the demo's default, 0): fixed, so every seed sees the same split. */
  splitSeed: number;
  /** Validate on this source's sentences and train on the other two (default: a random 90/10 split). */
  holdout?: 'imdb' | 'yelp' | 'amazon';
  /** Keep only the first N training / validation rows (tests); absent: all. */
  trainLimit?: number;
  validationLimit?: number;
}

export interface TaskSpec {
  id: string;
  title: string;
  /** Base model directory, relative to the repository root. */
  model: string;
  data: DataSpec;
  /** Settings every run of the task shares (the demo's). */
  common: Partial<TrainConfig>;
}

/** One row of a table: a method with its options; trained once per seed of its section. */
export interface RunSpec {
  /** Stable id within the plan (also the row's anchor). */
  id: string;
  label: string;
  /** What the row changes, in words (ablations). */
  note?: string;
  method: Method;
  options: Partial<TrainConfig>;
  /** The rank-sweep series a row belongs to ('vera' or 'lora'). */
  series?: string;
}

export interface Section {
  id: string;
  title: string;
  runs: RunSpec[];
  /** The task of this section's runs (default: the plan's). */
  task?: TaskSpec;
}

export interface Plan {
  task: TaskSpec;
  epochs: number;
  seeds: number[];
  sections: Section[];
}

export const UCI_TASK: TaskSpec = {
  id: 'uci-sentiment',
  title: 'UCI sentiment sentences (Kotzias et al. 2015), 90/10 split',
  model: BASE_MODEL_DIR,
  data: { source: 'uci-sentiment', splitSeed: 0 },
  common: DEMO_COMMON,
};

/** The same sentences split by source: trained on Yelp and Amazon, validated on IMDb's 1,000. */
export const UCI_IMDB_TASK: TaskSpec = {
  ...UCI_TASK,
  id: 'uci-sentiment-imdb-holdout',
  title: 'UCI sentiment sentences, trained on Yelp and Amazon, validated on IMDb',
  data: { source: 'uci-sentiment', splitSeed: 0, holdout: 'imdb' },
};

const VERA_RANKS = [1, 4, 16, 64, 256, 1024];
/** Learning rates around each method's demo rate (VeRA 3e-2, LoRA 2e-3), a factor of about 3 apart. */
const VERA_LRS = [3e-3, 1e-2, 3e-2, 1e-1];
const LORA_LRS = [5e-4, 2e-3, 5e-3, 2e-2];
const LORA_RANKS = [1, 2, 4, 8, 16, 32, 64];

/** The whole study: 4 epochs as in the demo, 5 seeds per run as in the paper's ablations and Fig. 2. */
export const PLAN: Plan = {
  task: UCI_TASK,
  epochs: 4,
  seeds: [0, 1, 2, 3, 4],
  sections: [
    {
      id: 'methods',
      title: 'VeRA against LoRA, head-only and full fine-tuning',
      runs: [
        { id: 'head', label: 'head only', method: 'head', options: HEAD_ONLY },
        { id: 'vera-r256', label: 'VeRA r=256', method: 'vera', options: vera(256) },
        // The paper's count L·(d_model + r) grows with the layers adapted: the same VeRA on every linear layer.
        {
          id: 'vera-r256-all',
          label: 'VeRA r=256, all linear layers',
          method: 'vera',
          options: vera(256, { target_modules: ['all-linear'] }),
        },
        { id: 'lora-r1', label: 'LoRA r=1', method: 'lora', options: lora(1) },
        { id: 'lora-r16', label: 'LoRA r=16', method: 'lora', options: lora(16) },
        // Full fine-tuning at two learning rates: the adapters' rates come from the demo, this one had none.
        { id: 'full', label: 'full fine-tuning, lr 1e-4', method: 'full', options: { lr: 1e-4, head_lr: 5e-3 } },
        { id: 'full-lr5e-4', label: 'full fine-tuning, lr 5e-4', method: 'full', options: { lr: 5e-4, head_lr: 5e-3 } },
      ],
    },
    {
      id: 'ablations',
      title: "Ablations of the paper's Table 6 (VeRA r=256)",
      runs: [
        {
          id: 'vera-r256',
          label: 'VeRA (default)',
          note: 'b from 0, d from 0.1, Kaiming uniform',
          method: 'vera',
          options: vera(256),
        },
        {
          id: 'only-d',
          label: 'only d',
          note: 'b removed: fixed at ones, not trained; d from 0 (the paper’s setting)',
          method: 'vera',
          options: vera(256, { vera_train_b: false, vera_d_initial: 0 }),
        },
        {
          id: 'only-b',
          label: 'only b',
          note: 'd removed: fixed at ones, not trained; b from 0',
          method: 'vera',
          options: vera(256, { vera_train_d: false }),
        },
        {
          id: 'init-kaiming-normal',
          label: 'A, B Kaiming normal',
          note: 'N(0, 2/fan_in) instead of Kaiming uniform',
          method: 'vera',
          options: vera(256, { vera_projection_init: 'kaiming_normal', save_projection: true }),
        },
        {
          id: 'init-uniform',
          label: 'A, B uniform [0, 0.1]',
          note: 'U(0, 0.1) instead of Kaiming uniform',
          method: 'vera',
          options: vera(256, { vera_projection_init: 'uniform_0_0.1', save_projection: true }),
        },
        {
          id: 'd-init-1e-7',
          label: 'd_initial 1e-7',
          note: 'λ_d starts at 1e-7 instead of 0.1',
          method: 'vera',
          options: vera(256, { vera_d_initial: 1e-7 }),
        },
        {
          id: 'd-init-1',
          label: 'd_initial 1.0',
          note: 'λ_d starts at 1 instead of 0.1',
          method: 'vera',
          options: vera(256, { vera_d_initial: 1 }),
        },
      ],
    },
    {
      id: 'rank',
      title: "Accuracy over rank (the paper's Fig. 2)",
      runs: [
        ...VERA_RANKS.map((r): RunSpec => ({
          id: `vera-r${r}`,
          label: `VeRA r=${r}`,
          method: 'vera',
          options: vera(r),
          series: 'vera',
        })),
        ...LORA_RANKS.map((r): RunSpec => ({
          id: `lora-r${r}`,
          label: `LoRA r=${r}`,
          method: 'lora',
          options: lora(r),
          series: 'lora',
        })),
      ],
    },
    {
      // Not in the paper: the adapters' learning rates above come from the demo; this checks how much
      // of the gap between VeRA and LoRA is the rate. The head keeps 5e-3 throughout.
      id: 'lr',
      title: 'Learning rate (VeRA r=256 and LoRA r=16)',
      runs: [
        ...VERA_LRS.map((lr): RunSpec => {
          const options = vera(256, lr === 3e-2 ? {} : { lr });
          return {
            id: lr === 3e-2 ? 'vera-r256' : `vera-r256-lr${lr}`,
            label: `VeRA r=256, lr ${lr}`,
            method: 'vera',
            options,
            series: 'vera',
          };
        }),
        ...LORA_LRS.map((lr): RunSpec => {
          const options = lr === 2e-3 ? lora(16) : { ...lora(16), lr };
          return {
            id: lr === 2e-3 ? 'lora-r16' : `lora-r16-lr${lr}`,
            label: `LoRA r=16, lr ${lr}`,
            method: 'lora',
            options,
            series: 'lora',
          };
        }),
      ],
    },
    {
      // Not in the paper: a second split of the same data, where the validation sentences come from
      // another source than the training ones, to see whether the comparison of section 1 holds.
      id: 'domains',
      title: 'Another split: trained on Yelp and Amazon, validated on IMDb',
      task: UCI_IMDB_TASK,
      runs: [
        { id: 'head', label: 'head only', method: 'head', options: HEAD_ONLY },
        { id: 'vera-r256', label: 'VeRA r=256', method: 'vera', options: vera(256) },
        { id: 'lora-r1', label: 'LoRA r=1', method: 'lora', options: lora(1) },
        { id: 'lora-r16', label: 'LoRA r=16', method: 'lora', options: lora(16) },
        { id: 'full-lr5e-4', label: 'full fine-tuning, lr 5e-4', method: 'full', options: { lr: 5e-4, head_lr: 5e-3 } },
      ],
    },
    {
      // Not in the paper: section 1's adapter rows again in bf16 mixed precision (--dtype bf16), to see
      // what it costs in accuracy; the f32 rows are section 1's runs (the same keys).
      id: 'precision',
      title: 'bf16 mixed precision (VeRA r=256 and LoRA r=16)',
      runs: [
        { id: 'vera-r256', label: 'VeRA r=256, f32', method: 'vera', options: vera(256) },
        { id: 'vera-r256-bf16', label: 'VeRA r=256, bf16', method: 'vera', options: { ...vera(256), dtype: 'bf16' } },
        { id: 'lora-r16', label: 'LoRA r=16, f32', method: 'lora', options: lora(16) },
        { id: 'lora-r16-bf16', label: 'LoRA r=16, bf16', method: 'lora', options: { ...lora(16), dtype: 'bf16' } },
      ],
    },
  ],
};
