// `vera demo`: the engine training a small causal transformer from scratch on an embedded task
// (sorting 8 digits), with progress lines and a held-out accuracy at the end. It exercises the whole
// stack a fine-tune uses: embeddings, fused attention, LayerNorm, GELU, cross-entropy with ignored
// positions, backward, AdamW with scopes bounding memory.

import { backward } from '../autograd/backward.js';
import { noGrad } from '../autograd/graph.js';
import { defaultBackend, getBackend, setDefaultBackend } from '../backends/registry.js';
import { Embedding, LayerNorm, Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import * as ops from '../ops/index.js';
import { AdamW } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';
import { arange, tensor } from '../tensor/creation.js';
import { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

const DIGITS = 8; // numbers to sort
const SEP = 10; // separator token
const VOCAB = 11;
const T = 2 * DIGITS; // model sees digits, SEP, and all sorted digits but the last
const C = 64;
const HEADS = 4;
const BATCH = 32;

class Block extends Module {
  ln_1: LayerNorm;
  c_attn: Linear;
  c_proj: Linear;
  ln_2: LayerNorm;
  c_fc: Linear;
  c_out: Linear;

  constructor(g: Generator) {
    super();
    this.ln_1 = new LayerNorm(C);
    this.c_attn = new Linear(C, 3 * C, { generator: g });
    this.c_proj = new Linear(C, C, { generator: g });
    this.ln_2 = new LayerNorm(C);
    this.c_fc = new Linear(C, 4 * C, { generator: g });
    this.c_out = new Linear(4 * C, C, { generator: g });
  }

  forward(x: Tensor): Tensor {
    const [b, t] = x.shape as [number, number];
    const qkv = ops.reshape(this.c_attn.forward(this.ln_1.forward(x)), [b, t, 3, HEADS, C / HEADS]);
    const [q, k, v] = ops.split(qkv, [1, 1, 1], 2).map((t) => ops.squeeze(t, 2)); // (B, T, H, D)
    const att = ops.reshape(ops.attention(q!, k!, v!, { causal: true }), [b, t, C]);
    const h = ops.add(x, this.c_proj.forward(att));
    return ops.add(h, this.c_out.forward(ops.gelu(this.c_fc.forward(this.ln_2.forward(h)))));
  }
}

class TinyGPT extends Module {
  wte: Embedding;
  wpe: Embedding;
  h: Block[];
  ln_f: LayerNorm;
  lm_head: Linear;

  constructor(g: Generator) {
    super();
    this.wte = new Embedding(VOCAB, C, { generator: g, std: 0.02 });
    this.wpe = new Embedding(T, C, { generator: g, std: 0.02 });
    this.h = [new Block(g), new Block(g)];
    this.ln_f = new LayerNorm(C);
    this.lm_head = new Linear(C, VOCAB, { generator: g });
  }

  /** Logits (B, T, V) for token ids (B, T). */
  forward(ids: Tensor): Tensor {
    const t = ids.shape[1]!;
    let x = ops.add(this.wte.forward(ids), this.wpe.forward(arange(t)));
    for (const block of this.h) x = block.forward(x);
    return this.lm_head.forward(this.ln_f.forward(x));
  }
}

/** A batch of "digits SEP sorted-digits" sequences: inputs (B, T) and targets (B, T), −100 off the answer. */
function batch(g: Generator, n: number): { ids: number[]; targets: number[]; answers: number[][] } {
  const ids: number[] = [];
  const targets: number[] = [];
  const answers: number[][] = [];
  for (let i = 0; i < n; i++) {
    const digits = Array.from({ length: DIGITS }, () => g.nextU32() % 10);
    const sorted = [...digits].sort((a, b) => a - b);
    const seq = [...digits, SEP, ...sorted];
    ids.push(...seq.slice(0, T));
    targets.push(...seq.slice(1, T + 1).map((tok, pos) => (pos >= DIGITS ? tok : -100)));
    answers.push(sorted);
  }
  return { ids, targets, answers };
}

/** Greedy decoding of the sorted half; returns the fraction of sequences sorted exactly. */
function exactMatch(model: TinyGPT, g: Generator, n: number): number {
  return noGrad(() =>
    scope(() => {
      const { ids, answers } = batch(g, n);
      const rows = answers.map((_, i) => ids.slice(i * T, i * T + DIGITS + 1));
      for (let step = 0; step < DIGITS; step++) {
        const width = DIGITS + 1 + step;
        const logits = model.forward(tensor(rows.flat(), { dtype: 'i32', shape: [n, width] }));
        const next = ops.argmax(ops.slice(logits, 1, width - 1)).toNumbers();
        rows.forEach((r, i) => r.push(next[i]!));
      }
      return rows.filter((r, i) => r.slice(DIGITS + 1).join() === answers[i]!.join()).length / n;
    }),
  );
}

export interface DemoOptions {
  steps: number;
  seed: number;
  backend?: string | undefined;
  threads?: number | undefined;
}

export async function runDemo(opts: DemoOptions): Promise<void> {
  if (opts.backend) {
    if (opts.backend !== 'js' && opts.backend !== 'native')
      throw new Error(`--backend must be "js" or "native", got "${opts.backend}"`);
    setDefaultBackend(getBackend(opts.backend));
  }
  const backend = defaultBackend();
  if (opts.threads !== undefined) backend.setThreads(opts.threads);
  const g = new Generator(opts.seed);
  const model = new TinyGPT(g);
  const opt = new AdamW(model.parameters(), { lr: 3e-3, weightDecay: 0.01 });
  const log = (s: string) => process.stdout.write(`${s}\n`);
  log(
    `vera demo: a ${model.numParameters().toLocaleString('en-US')}-parameter transformer learns to sort ${DIGITS} digits`,
  );
  log(`backend: ${backend.name}, ${backend.getThreads()} thread(s); ${opts.steps} steps of ${BATCH} sequences`);
  const t0 = performance.now();
  let ema = NaN;
  for (let step = 1; step <= opts.steps; step++) {
    const lr = 3e-3 * Math.min(1, step / 50) * (0.5 + 0.5 * Math.cos((Math.PI * step) / opts.steps));
    for (const group of opt.groups) group.lr = lr;
    const loss = scope(() => {
      const { ids, targets } = batch(g, BATCH);
      const logits = model.forward(tensor(ids, { dtype: 'i32', shape: [BATCH, T] }));
      const l = ops.crossEntropy(logits, tensor(targets, { dtype: 'i32', shape: [BATCH, T] }));
      backward(l);
      clipGradNorm(model.parameters(), 1);
      opt.step();
      opt.zeroGrad();
      return l.item();
    });
    if (!Number.isFinite(loss))
      throw new Error(`Loss became ${loss} at step ${step}; try a smaller learning rate or another --seed`);
    ema = Number.isNaN(ema) ? loss : 0.9 * ema + 0.1 * loss;
    if (step % 50 === 0 || step === opts.steps) {
      const secs = (performance.now() - t0) / 1000;
      log(
        `step ${String(step).padStart(4)}  loss ${ema.toFixed(4)}  ${((step * BATCH * T) / secs).toFixed(0)} tokens/s  ${secs.toFixed(1)} s`,
      );
    }
  }
  model.eval();
  const acc = exactMatch(model, new Generator(opts.seed + 1_000_003), 256);
  log(`held-out exact-match accuracy (greedy decoding, 256 sequences): ${(acc * 100).toFixed(1)}%`);
  opt.dispose();
  model.dispose();
}
