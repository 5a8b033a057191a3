// Pretraining of the GPT-2 base model on our engine: GPT-2 initialisation, causal-LM loss on packed
// blocks, AdamW (own state, so checkpoints can resume exactly) with warmup + cosine decay and gradient
// clipping, periodic evaluation, resumable checkpoints, and export as a Hugging Face model directory.

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { backward } from '../autograd/backward.js';
import { noGrad } from '../autograd/graph.js';
import type { Backend } from '../backends/backend.js';
import { writeFileAtomic } from '../io/atomic.js';
import { SafetensorsReader, writeSafetensors } from '../io/safetensors.js';
import type { HFConfig } from '../models/config-utils.js';
import { GPT2LMHeadModel } from '../models/gpt2/model.js';
import * as ops from '../ops/index.js';
import { fused } from '../ops/kernels.js';
import { clipGradNorm } from '../optim/clip.js';
import { randn, tensor, zerosLike } from '../tensor/creation.js';
import { Generator, dropoutStream, manualSeed } from '../tensor/random.js';
import { keep, scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { BlockSampler, evalBlocks } from './data.js';

export interface ModelShape {
  nLayer: number;
  nEmbd: number;
  nHead: number;
  nPositions: number;
  vocabSize: number;
  eosTokenId: number;
  dropout: number;
}

export interface TrainOptions {
  /** Optimizer steps in total (the cosine schedule's length). */
  steps: number;
  /** Blocks per step. */
  batch: number;
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  clip: number;
  seed: number;
  /** Evaluate on the first evalBlocks validation blocks every evalEvery steps (and on all at the end). */
  evalEvery: number;
  evalBlocks: number;
  logEvery: number;
  /** Save a checkpoint at least this often (seconds), and at the end. */
  checkpointEverySec: number;
  threads: number;
}

export const DEFAULT_TRAIN: TrainOptions = {
  steps: 2000,
  batch: 16,
  lr: 1e-3,
  minLr: 1e-4,
  warmup: 100,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  clip: 1,
  seed: 1234,
  evalEvery: 250,
  evalBlocks: 96,
  logEvery: 10,
  checkpointEverySec: 300,
  threads: 2,
};

/** config.json of the base: transformers' GPT2Config fields (so transformers loads it as is). */
export function gpt2Config(s: ModelShape): HFConfig {
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: s.vocabSize,
    n_positions: s.nPositions,
    n_embd: s.nEmbd,
    n_layer: s.nLayer,
    n_head: s.nHead,
    n_inner: null,
    activation_function: 'gelu_new',
    resid_pdrop: s.dropout,
    embd_pdrop: s.dropout,
    attn_pdrop: s.dropout,
    layer_norm_epsilon: 1e-5,
    initializer_range: 0.02,
    scale_attn_weights: true,
    scale_attn_by_inverse_layer_idx: false,
    reorder_and_upcast_attn: false,
    summary_type: 'cls_index',
    summary_use_proj: true,
    summary_activation: null,
    summary_proj_to_labels: true,
    summary_first_dropout: 0.1,
    bos_token_id: s.eosTokenId,
    eos_token_id: s.eosTokenId,
    tie_word_embeddings: true,
    use_cache: true,
  };
}

/**
 * GPT-2's initialisation (transformers' _init_weights): weights and embeddings N(0, 0.02), the residual
 * projections (attn.c_proj, mlp.c_proj) N(0, 0.02 / √(2·n_layer)), biases 0, LayerNorm (1, 0).
 */
export function initGpt2(model: GPT2LMHeadModel, seed: number): void {
  const g = new Generator(seed);
  const nLayer = model.cfg.nLayer;
  for (const [name, p] of model.stateDict()) {
    if (/\.ln_(1|2|f)\./.test(name)) continue; // LayerNorm keeps its (1, 0) construction
    const std = /c_proj\.weight$/.test(name) ? 0.02 / Math.sqrt(2 * nLayer) : 0.02;
    const t = name.endsWith('.bias') ? zerosLike(p) : randn(p.shape, { generator: g, std, backend: p.backend });
    p.backend.copy(p.view('init'), t.view('init'));
    t.dispose();
  }
}

/** AdamW whose moments are addressable by parameter name, so a checkpoint can hold and restore them. */
export class NamedAdamW {
  readonly m = new Map<string, Tensor>();
  readonly v = new Map<string, Tensor>();
  step = 0;

  constructor(
    readonly params: ReadonlyMap<string, Tensor>,
    readonly opts: Pick<TrainOptions, 'beta1' | 'beta2' | 'weightDecay'>,
  ) {
    for (const [n, p] of params) {
      this.m.set(n, keep(zerosLike(p)));
      this.v.set(n, keep(zerosLike(p)));
    }
  }

  /** Decay applies to matrices (weights, embeddings), not to biases or LayerNorm vectors. */
  static decays(p: Tensor): boolean {
    return p.rank >= 2;
  }

  update(lr: number): void {
    this.step++;
    for (const [n, p] of this.params) {
      if (!p.grad) continue;
      fused(p.backend).adamw(
        p.view('adamw'),
        p.grad.view('adamw'),
        this.m.get(n)!.view('adamw'),
        this.v.get(n)!.view('adamw'),
        {
          lr,
          beta1: this.opts.beta1,
          beta2: this.opts.beta2,
          eps: 1e-8,
          weightDecay: NamedAdamW.decays(p) ? this.opts.weightDecay : 0,
          step: this.step,
        },
      );
    }
  }

  zeroGrad(): void {
    for (const p of this.params.values()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}

/** Linear warmup to lr, then cosine decay to minLr at the last step. */
export function lrAt(step: number, o: Pick<TrainOptions, 'lr' | 'minLr' | 'warmup' | 'steps'>): number {
  if (step < o.warmup) return (o.lr * (step + 1)) / o.warmup;
  const t = Math.min(1, (step - o.warmup) / Math.max(1, o.steps - o.warmup));
  return o.minLr + 0.5 * (o.lr - o.minLr) * (1 + Math.cos(Math.PI * t));
}

/** Mean next-token loss (nats) of the model over evaluation windows, in eval mode and without grad. */
export function evaluate(model: GPT2LMHeadModel, blocks: readonly Int32Array[], batch = 16): number {
  const wasTraining = model.training;
  model.eval();
  const backend = model.parameters()[0]!.backend;
  let sum = 0;
  let n = 0;
  try {
    for (let i = 0; i < blocks.length; i += batch) {
      const rows = blocks.slice(i, i + batch);
      const width = rows[0]!.length;
      const flat = new Int32Array(rows.length * width);
      rows.forEach((r, j) => flat.set(r, j * width));
      sum += noGrad(() =>
        scope(() => {
          const x = tensor(flat, { dtype: 'i32', shape: [rows.length, width], backend });
          const logits = model.forward({ inputIds: ops.slice(x, 1, 0, -1) });
          return ops.crossEntropy(logits, ops.contiguous(ops.slice(x, 1, 1)), { reduction: 'sum' }).item();
        }),
      );
      n += rows.length * (width - 1);
    }
  } finally {
    model.train(wasTraining);
  }
  return sum / n;
}

export interface EvalRecord {
  step: number;
  tokens: number;
  trainLoss: number | null;
  validLoss: number;
  /** 'subset' (the first evalBlocks blocks) or 'full' (every validation block). */
  on: 'subset' | 'full';
}

export interface TrainState {
  step: number;
  tokens: number;
  elapsedSec: number;
  shape: ModelShape;
  opts: TrainOptions;
  evals: EvalRecord[];
  /** The dropout stream's position, so a resumed run draws the masks an uninterrupted one would. */
  rng?: { dropout: { seed: number; offset: number } };
}

const STATE_JSON = 'state.json';
const STATE_TENSORS = 'state.safetensors';

function saveCheckpoint(dir: string, params: ReadonlyMap<string, Tensor>, opt: NamedAdamW, state: TrainState): void {
  mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, Tensor>();
  for (const [n, p] of params) {
    tensors.set(`param.${n}`, p);
    tensors.set(`m.${n}`, opt.m.get(n)!);
    tensors.set(`v.${n}`, opt.v.get(n)!);
  }
  writeSafetensors(join(dir, STATE_TENSORS), tensors, { step: String(state.step) });
  // The JSON is written second: a crash between the two leaves a state.json whose step the tensors
  // already passed, which resuming detects (metadata step ≠ state step) rather than silently mixing.
  writeFileAtomic(join(dir, STATE_JSON), `${JSON.stringify(state, null, 2)}\n`);
}

function loadCheckpoint(dir: string, params: ReadonlyMap<string, Tensor>, opt: NamedAdamW): TrainState {
  const state = JSON.parse(readFileSync(join(dir, STATE_JSON), 'utf8')) as TrainState;
  const r = SafetensorsReader.open(join(dir, STATE_TENSORS));
  try {
    if (r.metadata['step'] !== String(state.step))
      throw new Error(
        `[pretrain] ${dir}: state.json (step ${state.step}) and state.safetensors (step ${r.metadata['step']}) disagree`,
      );
    const load = (key: string, into: Tensor) => {
      const t = r.tensor(key, { backend: into.backend });
      into.backend.copy(into.view('resume'), t.view('resume'));
      t.dispose();
    };
    for (const [n, p] of params) {
      load(`param.${n}`, p);
      load(`m.${n}`, opt.m.get(n)!);
      load(`v.${n}`, opt.v.get(n)!);
    }
  } finally {
    r.close();
  }
  opt.step = state.step;
  return state;
}

export interface PretrainRun {
  train: Uint16Array;
  valid: Uint16Array;
  shape: ModelShape;
  opts: TrainOptions;
  backend: Backend;
  /** Checkpoint directory (resumed from when it holds a checkpoint of the same shape). */
  ckptDir: string;
  log: (line: string) => void;
  /** Stop after this many steps of this invocation (for measuring throughput); the schedule is unchanged. */
  maxStepsNow?: number;
}

/** Trains (or resumes) and returns the model and the final state; the last checkpoint is on disk. */
export function pretrain(run: PretrainRun): { model: GPT2LMHeadModel; state: TrainState } {
  const { shape, opts, backend, log } = run;
  backend.setThreads?.(opts.threads);
  manualSeed(opts.seed);
  const model = new GPT2LMHeadModel(gpt2Config(shape), { backend, generator: new Generator(opts.seed) });
  initGpt2(model, opts.seed);
  model.train();
  const params = model.stateDict();
  for (const p of params.values()) p.setRequiresGrad(true);
  const opt = new NamedAdamW(params, opts);
  const sampler = new BlockSampler(run.train, shape.nPositions, opts.batch, opts.seed);
  const validAll = evalBlocks(run.valid, shape.nPositions);
  const validSubset = validAll.slice(0, opts.evalBlocks);
  const tokensPerStep = opts.batch * shape.nPositions;

  let state: TrainState = { step: 0, tokens: 0, elapsedSec: 0, shape, opts, evals: [] };
  if (existsSync(join(run.ckptDir, STATE_JSON))) {
    const prev = JSON.parse(readFileSync(join(run.ckptDir, STATE_JSON), 'utf8')) as TrainState;
    if (JSON.stringify(prev.shape) !== JSON.stringify(shape))
      throw new Error(`[pretrain] ${run.ckptDir} holds a checkpoint of another model shape; move it away first`);
    state = loadCheckpoint(run.ckptDir, params, opt);
    if (state.rng) dropoutStream.restore(state.rng.dropout);
    state.opts = opts;
    log(`resumed at step ${state.step} (${state.tokens} tokens, ${state.elapsedSec.toFixed(0)} s so far)`);
  } else {
    const v = evaluate(model, validAll);
    state.evals.push({ step: 0, tokens: 0, trainLoss: null, validLoss: v, on: 'full' });
    log(`step 0: valid loss ${v.toFixed(4)} (ppl ${Math.exp(v).toFixed(1)}) at initialisation, full validation set`);
  }
  log(
    `${model.numParameters()} parameters, ${run.train.length} train tokens (${sampler.blocksPerEpoch} blocks/epoch), ` +
      `${validAll.length} validation blocks; ${opts.steps} steps of ${tokensPerStep} tokens, ${opts.threads} threads`,
  );

  const startedAt = performance.now();
  const elapsedBefore = state.elapsedSec;
  let lastCkpt = performance.now();
  let window = { loss: 0, n: 0, t: performance.now(), tokens: 0 };
  let stepsNow = 0;
  const checkpoint = () => {
    state.elapsedSec = elapsedBefore + (performance.now() - startedAt) / 1000;
    state.rng = { dropout: dropoutStream.state() };
    saveCheckpoint(run.ckptDir, params, opt, state);
    lastCkpt = performance.now();
  };
  try {
    while (state.step < opts.steps && (run.maxStepsNow === undefined || stepsNow < run.maxStepsNow)) {
      const lr = lrAt(state.step, opts);
      const ids = sampler.batchAt(state.step);
      let gradNorm = 0;
      const loss = scope(() => {
        const x = tensor(ids, { dtype: 'i32', shape: [opts.batch, shape.nPositions + 1], backend });
        const logits = model.forward({ inputIds: ops.slice(x, 1, 0, -1) }); // (B, T, V)
        const l = ops.crossEntropy(logits, ops.contiguous(ops.slice(x, 1, 1)));
        backward(l);
        gradNorm = clipGradNorm([...params.values()], opts.clip).item();
        opt.update(lr);
        opt.zeroGrad();
        return l.item();
      });
      if (!Number.isFinite(loss)) throw new Error(`[pretrain] loss is ${loss} at step ${state.step}`);
      state.step++;
      stepsNow++;
      state.tokens += tokensPerStep;
      window.loss += loss;
      window.n++;
      window.tokens += tokensPerStep;
      if (state.step % opts.logEvery === 0 || state.step === opts.steps) {
        const secs = (performance.now() - window.t) / 1000;
        log(
          `step ${state.step}/${opts.steps} loss ${(window.loss / window.n).toFixed(4)} lr ${lr.toExponential(2)} ` +
            `|g| ${gradNorm.toFixed(2)} ${(window.tokens / secs).toFixed(0)} tok/s epoch ${sampler.epochAt(state.step - 1).toFixed(2)}`,
        );
        window = { loss: 0, n: 0, t: performance.now(), tokens: 0 };
      }
      if (state.step % opts.evalEvery === 0 || state.step === opts.steps) {
        const full = state.step === opts.steps;
        const v = evaluate(model, full ? validAll : validSubset);
        state.evals.push({
          step: state.step,
          tokens: state.tokens,
          trainLoss: loss,
          validLoss: v,
          on: full ? 'full' : 'subset',
        });
        log(
          `step ${state.step}: valid loss ${v.toFixed(4)} (ppl ${Math.exp(v).toFixed(2)}) on the ${full ? 'full' : 'subset'} validation set`,
        );
      }
      if (state.step === opts.steps || (performance.now() - lastCkpt) / 1000 >= opts.checkpointEverySec) checkpoint();
    }
    if (state.step < opts.steps) checkpoint();
  } finally {
    opt.dispose();
  }
  model.eval();
  for (const p of params.values()) p.setRequiresGrad(false);
  return { model, state };
}

export type StoreDType = 'f32' | 'f16' | 'bf16';

const TORCH_NAMES: Record<StoreDType, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };

/**
 * Writes config.json and model.safetensors (HF key names, lm_head tied to wte and so not stored) in
 * `dtype`, plus generation_config.json. The config's dropout stays as trained (transformers' default).
 */
export function exportModel(model: GPT2LMHeadModel, dir: string, dtype: StoreDType): void {
  mkdirSync(dir, { recursive: true });
  scope(() => {
    const tensors = new Map<string, Tensor>();
    for (const [n, p] of model.stateDict()) tensors.set(n, dtype === 'f32' ? p : ops.cast(p, dtype));
    writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  });
  const config = { ...model.config, dtype: TORCH_NAMES[dtype] };
  writeFileAtomic(join(dir, 'config.json'), jsonText(config));
  const eos = model.config['eos_token_id'];
  const gen = { bos_token_id: model.config['bos_token_id'], eos_token_id: eos };
  writeFileAtomic(join(dir, 'generation_config.json'), jsonText(gen));
}

/** JSON as Prettier formats it (arrays of scalars on one line), so exported files pass the repo's lint. */
export function jsonText(v: unknown): string {
  const text = JSON.stringify(v, null, 2).replace(
    /\[\n\s+([^[\]{}]*?)\n\s*\]/g,
    (_, inner: string) => `[${inner.split(/,\n\s*/).join(', ')}]`,
  );
  return `${text}\n`;
}

/** Rebuilds the model from a checkpoint directory (for export without training further). */
export function modelFromCheckpoint(ckptDir: string, backend: Backend): { model: GPT2LMHeadModel; state: TrainState } {
  const state = JSON.parse(readFileSync(join(ckptDir, STATE_JSON), 'utf8')) as TrainState;
  const model = new GPT2LMHeadModel(gpt2Config(state.shape), { backend, generator: new Generator(0) });
  const r = SafetensorsReader.open(join(ckptDir, STATE_TENSORS));
  try {
    for (const [n, p] of model.stateDict()) {
      const t = r.tensor(`param.${n}`, { backend });
      backend.copy(p.view('load'), t.view('load'));
      t.dispose();
    }
  } finally {
    r.close();
  }
  return { model: model.eval(), state };
}
