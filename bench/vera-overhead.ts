// What VeRA costs on top of its frozen base, and what projecting the shared input once saves: a training
// step on a stack of TinyLlama-1.1B-shaped decoder layers (the library's LlamaDecoderLayer: C = 2048,
// 32 query / 4 key-value heads of 64, SiLU MLP 5632, RMSNorm, RoPE; a final RMSNorm), frozen weights
// stored in bf16 as loadModel(…, { dtype: 'bf16' }) stores them, loss = mean(y²) as bench/gpt2-step.ts.
// Three cases on the same weights and input, measured in interleaved rounds:
// - the frozen base (PeftModel.disableAdapter): the backward runs to the input x (x requires grad in
//   every case, as above any adapted layer of a full model), so every activation gradient and no weight
//   gradient is computed;
// - VeRA r=256 on all seven linear layers (getPeftModel, PEFT's init), its λ trained by AdamW, with
//   shared-input reuse on (PeftModel.shareVeraInput: q/k/v and gate/up project x once) and off.
// Each row prints the GEMM FLOPs its case adds to the base, computed from the shapes. No other library
// is the peer: the base step of the same run is (the table's ratio is VeRA / base).
// Knobs: VERA_BENCH_LAYERS (default 2), VERA_BENCH_BATCH (4), VERA_BENCH_SEQ (128), VERA_BENCH_ROUNDS
// (9), VERA_BENCH_BACKEND (native).

import { getPeftModel, veraConfig } from '../src/adapters/index.js';
import { backward } from '../src/autograd/backward.js';
import type { Backend } from '../src/backends/backend.js';
import { type BackendName, getBackend } from '../src/backends/registry.js';
import { LlamaDecoderLayer, type RopeTables } from '../src/models/llama/model.js';
import { type LlamaConfig, parseLlamaConfig } from '../src/models/llama/config.js';
import { inverseFrequencies, ropeTables } from '../src/models/rope.js';
import { adoptParameter } from '../src/models/storage.js';
import { RMSNorm } from '../src/nn/layers.js';
import { Module } from '../src/nn/module.js';
import * as ops from '../src/ops/index.js';
import { AdamW } from '../src/optim/adamw.js';
import { tensor } from '../src/tensor/creation.js';
import { Generator } from '../src/tensor/random.js';
import { keep, scope } from '../src/tensor/scope.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { type BenchRow, emit, median, note } from './lib.js';

const intEnv = (name: string, fallback: number): number => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v < 1)
    throw new Error(`[bench] ${name} must be a positive integer, got ${process.env[name]}`);
  return v;
};

const THREADS = 2;

/** The shape of the stack and the adapter. */
export interface StackShape {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  mlp: number;
  /** VeRA's rank. */
  r: number;
}

/** TinyLlama-1.1B's layer shape (C = 2048, GQA 32/4, MLP 5632), VeRA r = 256. */
const SHAPE: StackShape = {
  layers: intEnv('VERA_BENCH_LAYERS', 2),
  hidden: 2048,
  heads: 32,
  kvHeads: 4,
  headDim: 64,
  mlp: 5632,
  r: 256,
};
const B = intEnv('VERA_BENCH_BATCH', 4);
const T = intEnv('VERA_BENCH_SEQ', 128);
/** Timed rounds; each runs one step of every case. */
const ROUNDS = intEnv('VERA_BENCH_ROUNDS', 9);

/** The seven linear layers of a block: (in, out). */
function linears(s: StackShape): Record<string, [number, number]> {
  return {
    q_proj: [s.hidden, s.heads * s.headDim],
    k_proj: [s.hidden, s.kvHeads * s.headDim],
    v_proj: [s.hidden, s.kvHeads * s.headDim],
    o_proj: [s.heads * s.headDim, s.hidden],
    gate_proj: [s.hidden, s.mlp],
    up_proj: [s.hidden, s.mlp],
    down_proj: [s.mlp, s.hidden],
  };
}
/** VeRA's target_modules: all seven. */
export const TARGETS = Object.keys(linears(SHAPE));
/** Layers reading one input tensor, which share A_s·x when reuse is on. */
const SHARED_GROUPS = [['q_proj', 'k_proj', 'v_proj'], ['o_proj'], ['gate_proj', 'up_proj'], ['down_proj']];

/**
 * GEMM FLOPs of one step (2·M·N·K per GEMM): the base's forward and input-gradient GEMMs, and what VeRA
 * adds — per layer (λ_d ⊙ h)·B_sᵀ and its dX (λ_d trains), and per group reading one input, h = x·A_sᵀ
 * and its dX (A and B are frozen: no dW). Every input needs a gradient, since x requires grad.
 */
export function gemmFlops(s: StackShape, tokens: number): { base: number; veraReuseOn: number; veraReuseOff: number } {
  const lin = linears(s);
  const perLayer = (f: (inF: number, outF: number) => number) =>
    Object.values(lin).reduce((sum, [i, o]) => sum + f(i, o), 0);
  const aSide = (groups: readonly string[][]) => groups.reduce((sum, g) => sum + 4 * lin[g[0]!]![0] * s.r, 0);
  const scale = tokens * s.layers;
  const bSide = scale * perLayer((_, o) => 4 * s.r * o);
  return {
    base: scale * perLayer((i, o) => 4 * i * o),
    veraReuseOn: bSide + scale * aSide(SHARED_GROUPS),
    veraReuseOff: bSide + scale * aSide(TARGETS.map((name) => [name])),
  };
}

/** A stack of Llama decoder layers and a final norm, reading hidden states (B, T, C). */
export class DecoderStack extends Module {
  layers: LlamaDecoderLayer[];
  norm: RMSNorm;
  /** RoPE tables for positions 0..T-1 (not parameters). */
  readonly #rope: RopeTables;
  constructor(cfg: LlamaConfig, seq: number, backend: Backend) {
    super();
    const rope = scope(() => {
      const freq = inverseFrequencies(cfg.rope, cfg.headDim);
      return ropeTables(tensor(freq, { backend }), { start: 0, length: seq });
    });
    this.#rope = { cos: keep(rope.cos), sin: keep(rope.sin) };
    const generator = new Generator(0);
    this.layers = Array.from(
      { length: cfg.numHiddenLayers },
      (_, i) => new LlamaDecoderLayer(cfg, i, { generator, backend }),
    );
    this.norm = new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps, { backend });
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = x;
      for (const layer of this.layers) h = layer.forward(h, { ...this.#rope, mask: null, cache: undefined });
      return this.norm.forward(h);
    });
  }
  override dispose(): void {
    super.dispose();
    this.#rope.cos.dispose();
    this.#rope.sin.dispose();
  }
}

/** The stack, frozen, with every linear weight stored in bf16 (loadModel's bf16 storage; norms stay f32). */
export function makeStack(s: StackShape, seq: number, backend: Backend): DecoderStack {
  const cfg = parseLlamaConfig(
    {
      hidden_size: s.hidden,
      num_attention_heads: s.heads,
      num_key_value_heads: s.kvHeads,
      head_dim: s.headDim,
      intermediate_size: s.mlp,
      num_hidden_layers: s.layers,
      vocab_size: 32000,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
    },
    'llama',
  );
  const stack = new DecoderStack(cfg, seq, backend).freeze();
  for (const [name, p] of stack.namedParameters()) {
    if (name.endsWith('_proj.weight'))
      adoptParameter(
        stack,
        p,
        scope(() => ops.cast(p, 'bf16')),
      );
  }
  return stack;
}

/** One training step: forward, loss = mean(y²), backward (to x and the trainable tensors), AdamW. */
export function trainingStep(stack: DecoderStack, x: Tensor, opt: AdamW | null): number {
  return scope(() => {
    opt?.zeroGrad();
    x.grad?.dispose();
    x.grad = null;
    const l = ops.mean(ops.square(stack.forward(x)));
    backward(l);
    opt?.step();
    return l.item();
  });
}

type Case = 'base' | 'on' | 'off';

/**
 * Median ms/step and the last loss of each case, measured in interleaved rounds (base, reuse on, reuse
 * off, base, …) after `warmup` untimed rounds, so the shared machine's drift reaches every case alike:
 * reuse saves a few percent, less than that drift between cases measured one after another.
 */
function measure(steps: Record<Case, () => number>, rounds: number, warmup: number) {
  const samples: Record<Case, number[]> = { base: [], on: [], off: [] };
  const loss: Record<Case, number> = { base: 0, on: 0, off: 0 };
  for (let i = 0; i < warmup + rounds; i++) {
    for (const c of ['base', 'on', 'off'] as const) {
      const t0 = performance.now();
      loss[c] = steps[c]();
      if (i >= warmup) samples[c].push(performance.now() - t0);
    }
  }
  const result = (c: Case) => ({ ms: median(samples[c]), loss: loss[c] });
  return { base: result('base'), on: result('on'), off: result('off') };
}

export async function run(): Promise<BenchRow[]> {
  const name = (process.env['VERA_BENCH_BACKEND'] ?? 'native') as BackendName;
  const backend = getBackend(name);
  const prev = backend.getThreads?.() ?? THREADS;
  backend.setThreads?.(THREADS);
  const { layers, hidden, heads, kvHeads, mlp, r } = SHAPE;
  const shape = `${layers} TinyLlama-1.1B layer${layers > 1 ? 's' : ''} (C=${hidden}, GQA ${heads}/${kvHeads}, MLP ${mlp}), B=${B} T=${T}, bf16 frozen weights, ${THREADS} threads`;
  const flops = gemmFlops(SHAPE, B * T);
  const gflop = (f: number) => f / 1e9;
  const rows: BenchRow[] = [];
  const stack = makeStack(SHAPE, T, backend);
  const x = keep(
    tensor(new Generator(1).normal(B * T * hidden), { shape: [B, T, hidden], backend, requiresGrad: true }),
  );
  try {
    const peft = getPeftModel(stack, veraConfig({ r, target_modules: TARGETS }));
    const opt = new AdamW(
      peft.trainableParameters().map(([, t]) => t),
      { lr: 1e-3 },
    );
    const vera = (reuse: boolean) => () => {
      peft.shareVeraInput = reuse;
      return trainingStep(stack, x, opt);
    };
    note(`vera-overhead: ${shape}, ${name} backend: base, VeRA reuse on, reuse off, in ${ROUNDS} rounds`);
    const m = measure(
      { base: () => peft.disableAdapter(() => trainingStep(stack, x, null)), on: vera(true), off: vera(false) },
      ROUNDS,
      2,
    );
    opt.dispose();
    const base = m.base;
    rows.push(
      emit({
        bench: 'vera-overhead',
        case: `${shape}: frozen base step (backward to the input)`,
        ours: base.ms,
        peer: null,
        peer_name: '—',
        unit: 'ms/step',
        base_gemm_gflop: gflop(flops.base),
        extra_gemm_gflop: 0,
        ours_loss: base.loss,
      }),
    );
    for (const reuse of ['on', 'off'] as const) {
      const extra = reuse === 'on' ? flops.veraReuseOn : flops.veraReuseOff;
      rows.push(
        emit({
          bench: 'vera-overhead',
          case: `${shape}: VeRA r=${r} on all 7 linear layers (λ train), shared-input reuse ${reuse}`,
          ours: m[reuse].ms,
          peer: base.ms,
          peer_name: 'vera-ts, the frozen base step',
          unit: 'ms/step',
          extra_gemm_gflop: gflop(extra),
          extra_gemm_fraction: extra / flops.base,
          ours_loss: m[reuse].loss,
        }),
      );
    }
    // What reuse removes, measured and as the base's GEMM rate predicts it.
    const removed = flops.veraReuseOff - flops.veraReuseOn;
    rows.push(
      emit({
        bench: 'vera-overhead',
        case: `${shape}: VeRA shared-input reuse off vs on (removes ${gflop(removed).toFixed(1)} GFLOP of GEMMs a step)`,
        ours: m.off.ms,
        peer: m.on.ms,
        peer_name: 'vera-ts, VeRA with reuse on',
        unit: 'ms/step',
        removed_gemm_gflop: gflop(removed),
        measured_diff_ms: m.off.ms - m.on.ms,
        predicted_diff_ms: (removed / flops.base) * base.ms,
      }),
    );
  } finally {
    stack.dispose();
    x.grad?.dispose();
    x.dispose();
    backend.setThreads?.(prev);
  }
  return rows;
}
