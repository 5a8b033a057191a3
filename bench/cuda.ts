// Training and generation on one NVIDIA GPU, ours against PyTorch + transformers + PEFT in the same run
// (bench/peers/peft_cuda.py), on issue 10's cases: random-init models of the Llama-2-7B, Llama-1B and
// GPT-2-medium shapes with bf16 frozen weights, VeRA or LoRA on the named linear layers, AdamW on the
// adapter, loss = causal-LM cross-entropy over the batch (labels = inputs, shifted by one, as
// transformers computes it); tokens/s = batch·seq / mean step time over the timed steps, and the peak
// device memory of the timed steps (ours: the stream-ordered pool's high-water mark, buffers, scratch
// and cuBLASLt workspaces; the peer: torch.cuda.max_memory_allocated). Greedy generation (Llama-1B
// shape, 128-token prompt, 128 new tokens, batch 1 and 32) against transformers' generate.
//
// Our weights are not drawn one by one on the host (6.7 billion normals would take minutes): a block of
// normal(0, 0.02) values is made once, uploaded, and tiled through each weight by the copy kernel (its
// length is prime, so no two rows of a matrix repeat each other); norms are one. Values only set the
// numbers the kernels see, not the work they do.
//
// Knobs: VERA_BENCH_CUDA_CASES (comma list of case names, default all), VERA_BENCH_STEPS (timed steps,
// 10), VERA_BENCH_WARMUP (3), VERA_BENCH_PEER=0 (ours only), VERA_PEER_PYTHON (python3 with torch).

import { getPeftModel, loraConfig, veraConfig } from '../src/adapters/index.js';
import { backward } from '../src/autograd/backward.js';
import { noGrad } from '../src/autograd/graph.js';
import type { Backend } from '../src/backends/backend.js';
import { CudaBackend } from '../src/backends/cuda/index.js';
import { getBackend } from '../src/backends/registry.js';
import { decodeSteps } from '../src/generate/generate.js';
import { NoInitGenerator } from '../src/models/common.js';
import type { PreTrainedModel } from '../src/models/pretrained.js';
import { resolveModelClass } from '../src/models/registry.js';
import { adoptParameter, keepWeightsInBf16, skeletonBackend } from '../src/models/storage.js';
import { LayerNorm, RMSNorm } from '../src/nn/layers.js';
import * as ops from '../src/ops/index.js';
import { AdamW } from '../src/optim/adamw.js';
import { empty, tensor } from '../src/tensor/creation.js';
import { Generator } from '../src/tensor/random.js';
import { keep, scope } from '../src/tensor/scope.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { type Collective, allReduceViewSum } from '../src/train/distributed/collective.js';
import { causalTargets, summedLoss } from '../src/train/heads.js';
import { IGNORE_INDEX } from '../src/data/index.js';
import { type BenchRow, PEER_PYTHON, emit, note, runPeer } from './lib.js';

type Shape = Record<string, number | string>;

export const LLAMA_7B: Shape = {
  model_type: 'llama',
  architectures: 'LlamaForCausalLM',
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 32,
  vocab_size: 32000,
  max_position_embeddings: 4096,
};
export const LLAMA_1B: Shape = {
  ...LLAMA_7B,
  hidden_size: 2048,
  intermediate_size: 8192,
  num_hidden_layers: 16,
  num_attention_heads: 32,
  num_key_value_heads: 8,
};
export const GPT2_MEDIUM: Shape = {
  model_type: 'gpt2',
  architectures: 'GPT2LMHeadModel',
  n_embd: 1024,
  n_layer: 24,
  n_head: 16,
  vocab_size: 50257,
  n_positions: 1024,
};
const ALL7 = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

export interface TrainCase {
  kind: 'train';
  name: string;
  label: string;
  shape: Shape;
  method: 'vera' | 'lora';
  r: number;
  targets: string[];
  batch: number;
  seq: number;
  /** What we do not run yet (the row still carries the peer's number). */
  unsupported?: string;
  /** Gradient checkpointing on every block (the peer: gradient_checkpointing_enable). */
  checkpointing?: boolean;
}
export interface GenerateCase {
  kind: 'generate';
  name: string;
  label: string;
  shape: Shape;
  batch: number;
  prompt: number;
  newTokens: number;
}
type Case = TrainCase | GenerateCase;

/** The names are bench/peers/peft_cuda.py's. */
export const CASES: readonly Case[] = [
  ...(
    [
      [
        'llama7b-vera1024-all',
        'Llama-2-7B shape, VeRA r=1024 on all 7 linear layers, 4×512',
        LLAMA_7B,
        'vera',
        1024,
        ALL7,
        4,
        512,
      ],
      [
        'llama7b-lora64-all',
        'Llama-2-7B shape, LoRA r=64 on all 7 linear layers, 4×512',
        LLAMA_7B,
        'lora',
        64,
        ALL7,
        4,
        512,
      ],
      [
        'llama7b-vera64-all',
        'Llama-2-7B shape, VeRA r=64 on all 7 linear layers, 4×512',
        LLAMA_7B,
        'vera',
        64,
        ALL7,
        4,
        512,
      ],
      [
        'llama1b-vera256-qv',
        'Llama-1B shape, VeRA r=256 on q_proj, v_proj, 8×1024',
        LLAMA_1B,
        'vera',
        256,
        ['q_proj', 'v_proj'],
        8,
        1024,
      ],
      [
        'llama1b-lora16-qv',
        'Llama-1B shape, LoRA r=16 on q_proj, v_proj, 8×1024',
        LLAMA_1B,
        'lora',
        16,
        ['q_proj', 'v_proj'],
        8,
        1024,
      ],
      [
        'gpt2m-vera1024-cattn',
        'GPT-2-medium shape, VeRA r=1024 on c_attn, 16×512',
        GPT2_MEDIUM,
        'vera',
        1024,
        ['c_attn'],
        16,
        512,
      ],
      [
        'gpt2m-lora4-cattn',
        'GPT-2-medium shape, LoRA r=4 on c_attn, 16×512',
        GPT2_MEDIUM,
        'lora',
        4,
        ['c_attn'],
        16,
        512,
      ],
    ] as const
  ).map(([name, label, shape, method, r, targets, batch, seq]): TrainCase => ({
    kind: 'train',
    name,
    label,
    shape,
    method,
    r,
    targets: [...targets],
    batch,
    seq,
  })),
  {
    kind: 'train',
    name: 'llama7b-vera1024-all-ckpt',
    label: 'Llama-2-7B shape, VeRA r=1024 on all 7 linear layers, 4×512, gradient checkpointing',
    shape: LLAMA_7B,
    method: 'vera',
    r: 1024,
    targets: ALL7,
    batch: 4,
    seq: 512,
    checkpointing: true,
  },
  {
    kind: 'train',
    name: 'llama1b-vera256-qv-compile',
    label: 'Llama-1B shape, VeRA r=256 on q_proj, v_proj, 8×1024 (peer: torch.compile)',
    shape: LLAMA_1B,
    method: 'vera',
    r: 256,
    targets: ['q_proj', 'v_proj'],
    batch: 8,
    seq: 1024,
  },
  ...[1, 32].map((batch): GenerateCase => ({
    kind: 'generate',
    name: `llama1b-generate-b${batch}`,
    label: `Llama-1B shape, greedy generation, batch ${batch}, 128-token prompt, 128 new tokens`,
    shape: LLAMA_1B,
    batch,
    prompt: 128,
    newTokens: 128,
  })),
];

const intEnv = (name: string, fallback: number): number => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v < 0)
    throw new Error(`[bench cuda] ${name} must be an integer ≥ 0, got ${process.env[name]}`);
  return v;
};

/** A prime number of values, so the tiling never lines up with a matrix's rows. */
const BLOCK = 4_000_037;

/**
 * A model of `shape` on `backend`, frozen, Linear and Embedding weights stored in bf16 (as loadModel
 * with dtype 'bf16' stores them), weights tiled from one normal(0, 0.02) block, norms one, biases zero.
 */
export function randomModel(shape: Shape, backend: Backend): PreTrainedModel {
  const config = { ...shape, architectures: [shape['architectures'] as string] };
  const cls = resolveModelClass(config, undefined, 'bench');
  const model = cls.create(config, { backend: skeletonBackend(backend), generator: new NoInitGenerator() });
  keepWeightsInBf16(model);
  const norms = new Set<Tensor>();
  for (const [, m] of model.namedModules())
    if (m instanceof LayerNorm || m instanceof RMSNorm) for (const p of m.parameters()) norms.add(p);
  const block = tensor(new Generator(0).normal(BLOCK, 0, 0.02), { backend });
  try {
    const seen = new Set<Tensor>();
    for (const [name, p] of model.namedParameters()) {
      if (seen.has(p)) continue;
      seen.add(p);
      const t = empty(p.shape, { backend, dtype: p.dtype });
      const v = t.view('bench');
      if (norms.has(p)) backend.fill(v, name.endsWith('.bias') ? 0 : 1);
      else if (name.endsWith('.bias')) backend.fill(v, 0);
      else
        for (let at = 0; at < p.numel; at += BLOCK) {
          const n = Math.min(BLOCK, p.numel - at);
          backend.copy(
            { ...v, offset: at, shape: [n], strides: [1] },
            { ...block.view('bench'), shape: [n], strides: [1] },
          );
        }
      adoptParameter(model, p, t);
    }
  } finally {
    block.dispose();
  }
  backend.sync();
  return model.freeze();
}

/** Fixed pseudo-random token ids (an LCG), the same on every run. */
function tokenIds(vocab: number, n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) % vocab;
  });
}

interface Measured {
  tokensPerS: number;
  stepMs: number;
  peakGiB: number | null;
  loss: number;
  trainable: number;
}

/** Our training step on case `c`: the mean of `steps` timed steps after `warmup` untimed ones. */
/**
 * `group` (data-parallel ranks, bench/cuda-dp.ts): the step's gradients are all-reduced over it
 * between the backward and the update, as the trainer reduces them.
 */
export function trainOurs(c: TrainCase, backend: Backend, steps: number, warmup: number, group?: Collective): Measured {
  const model = randomModel(c.shape, backend);
  const vocab = c.shape['vocab_size'] as number;
  const config =
    c.method === 'vera'
      ? veraConfig({ r: c.r, target_modules: c.targets, vera_dropout: 0 })
      : loraConfig({ r: c.r, lora_alpha: 2 * c.r, target_modules: c.targets, lora_dropout: 0 });
  const peft = getPeftModel(model, config);
  peft.train();
  peft.setGradientCheckpointing(c.checkpointing ?? false);
  const params = peft.trainableParameters().map(([, t]) => t);
  const opt = new AdamW(params, { lr: 1e-4 });
  const ids = keep(
    tensor(Int32Array.from(tokenIds(vocab, c.batch * c.seq, 1)), { shape: [c.batch, c.seq], dtype: 'i32', backend }),
  );
  const tokens = c.batch * (c.seq - 1);
  // VERA_BENCH_MEMORY=1: the bytes live buffers hold after the first step's forward and backward, next to
  // the pool's high-water mark so far (what the peak is made of: kept activations vs transients).
  let probes = process.env['VERA_BENCH_MEMORY'] === '1' ? 2 : 0;
  const probe = (at: string): void => {
    if (probes === 0) return;
    probes--;
    backend.sync();
    const m = backend.memory();
    const gib = (b: number | undefined): string => (b === undefined ? '?' : (b / 2 ** 30).toFixed(2));
    note(`memory ${c.name} after the ${at}: live ${gib(m.allocated)} GiB, pool peak ${gib(m.peak)} GiB`);
  };
  const step = (): Tensor =>
    scope(() => {
      // As the trainer runs a causal LM (heads.ts lossInputs): the model returns its per-position loss.
      const out = peft.forward({
        inputIds: ids,
        lossTargets: { targets: causalTargets(ids), ignoreIndex: IGNORE_INDEX },
      });
      const loss = ops.mulScalar(summedLoss(out, ids, 'causal-lm'), 1 / tokens);
      probe('forward');
      backward(loss);
      probe('backward');
      if (group) allReduceViewSum(group, backend, opt.arena!.span('grad', 0, opt.arena!.params.length, 'bench'));
      opt.step();
      opt.zeroGrad();
      return keep(loss);
    });
  try {
    for (let i = 0; i < warmup; i++) step().dispose();
    backend.sync();
    backend.resetPeakMemory?.();
    if (backend instanceof CudaBackend) backend.profileReport(); // start the profile at the timed steps
    let last: Tensor | null = null;
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      last?.dispose();
      last = step();
    }
    backend.sync();
    const ms = (performance.now() - t0) / Math.max(steps, 1);
    printProfile(c.name, backend, steps, ms);
    const loss = last ? (last.item() as number) : NaN;
    last?.dispose();
    const peak = backend.memory().peak;
    return {
      tokensPerS: (c.batch * c.seq) / (ms / 1000),
      stepMs: ms,
      peakGiB: peak === undefined ? null : peak / 2 ** 30,
      loss,
      trainable: params.reduce((n, t) => n + t.numel, 0),
    };
  } finally {
    opt.dispose();
    ids.dispose();
    peft.dispose();
    backend.sync();
    backend.emptyCache();
  }
}

/**
 * With VERA_CUDA_PROFILE=1: the kernel labels by device time per step (stderr), the top 30 and the
 * rest, and how much of the step the device was busy (the rest is the host not keeping it fed).
 */
function printProfile(name: string, backend: Backend, steps: number, stepMs: number): void {
  const report = backend instanceof CudaBackend ? backend.profileReport() : null;
  if (!report) return;
  const rows = Object.entries(report).sort((a, b) => b[1].gpuMs - a[1].gpuMs);
  const gpu = rows.reduce((s, [, e]) => s + e.gpuMs, 0) / steps;
  const host = rows.reduce((s, [, e]) => s + e.hostMs, 0) / steps;
  note(
    `profile ${name}: step ${stepMs.toFixed(1)} ms, device busy ${gpu.toFixed(1)} ms, host in calls ${host.toFixed(1)} ms`,
  );
  for (const [label, e] of rows.slice(0, 30))
    note(
      `  ${(e.gpuMs / steps).toFixed(2).padStart(8)} ms ${(e.hostMs / steps).toFixed(2).padStart(7)} ms host ${String(e.calls / steps).padStart(6)}× ${label}`,
    );
  const rest = rows.slice(30).reduce((s, [, e]) => s + e.gpuMs, 0) / steps;
  note(`  ${rest.toFixed(2).padStart(8)} ms in ${Math.max(rows.length - 30, 0)} other labels`);
}

/** Our greedy generation on case `c`: the better of 2 runs after a warm-up. */
export function generateOurs(c: GenerateCase, backend: Backend): { tokensPerS: number; ms: number } {
  const model = randomModel(c.shape, backend).eval();
  const vocab = c.shape['vocab_size'] as number;
  const prompts = Array.from({ length: c.batch }, (_, b) => tokenIds(vocab, c.prompt, 7 + b));
  const run = (): number => {
    const t0 = performance.now();
    let n = 0;
    noGrad(() => {
      for (const _ of decodeSteps(model, prompts, { maxNewTokens: c.newTokens, stopTokenIds: [] })) n++;
    });
    backend.sync();
    if (n !== c.newTokens) throw new Error(`[bench cuda] ${c.name}: ${n} steps, expected ${c.newTokens}`);
    return performance.now() - t0;
  };
  try {
    run(); // warm-up: GEMM heuristics, pool growth
    if (backend instanceof CudaBackend) backend.profileReport(); // the profile covers the timed runs
    const ms = Math.min(run(), run());
    printProfile(c.name, backend, 2, ms);
    return { tokensPerS: (c.batch * c.newTokens) / (ms / 1000), ms };
  } finally {
    model.dispose();
    backend.sync();
    backend.emptyCache();
  }
}

function peerRow(c: Case): Record<string, unknown> | string {
  if (process.env['VERA_BENCH_PEER'] === '0') return 'the peer was not run (VERA_BENCH_PEER=0)';
  const r = runPeer(PEER_PYTHON, ['bench/peers/peft_cuda.py', c.name], {}, 15 * 60_000);
  if (!r.ok) return r.reason;
  return r.lines.find((l) => l['case'] === c.name) ?? `no row for ${c.name} in the peer's output`;
}

export async function run(): Promise<BenchRow[]> {
  const wanted = (process.env['VERA_BENCH_CUDA_CASES'] ?? '').split(',').filter(Boolean);
  for (const w of wanted)
    if (!CASES.some((c) => c.name === w))
      throw new Error(`[bench cuda] unknown case "${w}"; cases: ${CASES.map((c) => c.name).join(', ')}`);
  const cases = wanted.length ? CASES.filter((c) => wanted.includes(c.name)) : CASES;
  const steps = intEnv('VERA_BENCH_STEPS', 10);
  const warmup = intEnv('VERA_BENCH_WARMUP', 3);
  let backend: Backend;
  try {
    backend = getBackend('cuda');
  } catch (e) {
    // No GPU here (CI, CPU machines): nothing to compare; BENCHMARKS.md keeps the last GPU run's block.
    note(`cuda: skipped: ${(e as Error).message}`);
    return [];
  }
  const gpu = backend.info?.()['name'] ?? null;
  const rows: BenchRow[] = [];
  for (const c of cases) {
    note(`cuda: ${c.name}: ours`);
    let ours: Measured | { tokensPerS: number; ms: number } | null = null;
    let oursNote = '';
    if (!(c.kind === 'train' && c.unsupported)) {
      try {
        ours = c.kind === 'train' ? trainOurs(c, backend, steps, warmup) : generateOurs(c, backend);
      } catch (e) {
        oursNote = (e as Error).message;
        note(`cuda: ${c.name}: ours failed: ${oursNote}`);
      }
    } else oursNote = c.unsupported;
    note(`cuda: ${c.name}: peer`);
    const peer = peerRow(c);
    const p = typeof peer === 'string' ? null : peer;
    if (typeof peer === 'string') note(`cuda: ${c.name}: peer not run: ${peer}`);
    const num = (k: string): number | null => (p && typeof p[k] === 'number' ? (p[k] as number) : null);
    const extra: Record<string, unknown> =
      c.kind === 'train'
        ? {
            ours_step_ms: ours && 'stepMs' in ours ? ours.stepMs : null,
            ours_peak_gib: ours && 'peakGiB' in ours ? ours.peakGiB : null,
            ours_loss: ours && 'loss' in ours ? ours.loss : null,
            ours_trainable: ours && 'trainable' in ours ? ours.trainable : null,
            peer_step_ms: num('step_ms'),
            peer_peak_gib: num('peak_gib'),
            peer_trainable: num('trainable'),
            peak_ratio:
              ours && 'peakGiB' in ours && ours.peakGiB !== null && num('peak_gib')
                ? ours.peakGiB / num('peak_gib')!
                : null,
          }
        : { ours_ms: ours && 'ms' in ours ? ours.ms : null, peer_ms: num('ms') };
    rows.push(
      emit({
        bench: 'cuda',
        case: c.label,
        ours: ours?.tokensPerS ?? null,
        peer: num('tokens_per_s'),
        peer_name:
          c.kind === 'generate'
            ? 'transformers generate (bf16, sdpa)'
            : `PEFT ${p?.['peft'] ?? '0.21'} eager${c.name.endsWith('-compile') ? ' + torch.compile' : ''}, torch.autocast bf16`,
        unit: 'tokens/s',
        gpu: gpu ?? p?.['gpu'] ?? null,
        // bf16 unless VERA_CUDA_ACTIVATIONS=f32 (the activations between bf16 GEMMs).
        ours_activations: backend.activationDType ?? 'f32',
        ...extra,
        ...(oursNote && !ours ? { ours_note: oursNote } : {}),
        ...(typeof peer === 'string' ? { peer_note: peer } : {}),
      }),
    );
  }
  return rows;
}
