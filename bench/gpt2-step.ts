// One training step of a GPT-2-small-shaped stack with a frozen base, against PyTorch on the same
// machine (bench/peers/torch_gpt2_step.py computes exactly the same function): 12 pre-LayerNorm
// blocks, C = 768, 12 heads, T = 128, B = 4, a final ln_f, loss = mean(y²). Two cases: only each
// block's ln_1.weight trains (one vector per layer), so the backward computes every activation
// gradient and no weight gradient; and VeRA r=256 on attn.c_attn and attn.c_proj, written as PEFT
// computes it, whose λ vectors train. A step is forward, backward and an AdamW update. Each case runs
// in f32 and in bf16 mixed precision: the frozen Linear weights and VeRA's projections stored in bf16,
// so their GEMMs compute in bf16 with f32 accumulation, against PyTorch under torch.autocast(bfloat16)
// with its frozen weights stored in bf16 too (its faster variant here); plus our bf16 step against our
// f32 step.

import { backward } from '../src/autograd/backward.js';
import { type BackendName, getBackend } from '../src/backends/registry.js';
import type { Backend } from '../src/backends/backend.js';
import * as ops from '../src/ops/index.js';
import { AdamW } from '../src/optim/adamw.js';
import { full, randn, tensor } from '../src/tensor/creation.js';
import { Generator } from '../src/tensor/random.js';
import { keep, scope } from '../src/tensor/scope.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { type BenchRow, PEER_PYTHON, emit, note, runPeer, threadEnv, timeIt } from './lib.js';

const B = 4;
const T = 128;
const C = 768;
const H = 12;
const L = 12;
const STEPS = 10;
const R = 256;

type Mode = 'ln' | 'vera';
type StepDType = 'f32' | 'bf16';

/** VeRA's trained vectors on one linear layer. */
interface Lambdas {
  d: Tensor; // (R)
  b: Tensor; // (out)
}

interface Block {
  ln1w: Tensor;
  ln1b: Tensor;
  attnW: Tensor; // (3C, C)
  attnB: Tensor;
  projW: Tensor; // (C, C)
  projB: Tensor;
  ln2w: Tensor;
  ln2b: Tensor;
  fcW: Tensor; // (4C, C)
  fcB: Tensor;
  fcProjW: Tensor; // (C, 4C)
  fcProjB: Tensor;
  vera: { attn: Lambdas; proj: Lambdas } | null;
}

/** The shared frozen projections, Kaiming-uniform as PEFT draws them: A (R, C), B (3C, R). */
interface Projections {
  a: Tensor;
  b: Tensor;
}

function makeStack(
  backend: Backend,
  mode: Mode,
  dtype: StepDType,
): { blocks: Block[]; lnf: [Tensor, Tensor]; proj: Projections | null } {
  const g = new Generator(0);
  // Frozen matrices in the step's storage dtype (bf16: their GEMMs compute in bf16).
  const stored = (t: Tensor): Tensor => keep(dtype === 'bf16' ? scope(() => ops.cast(t, 'bf16')) : t);
  const w = (rows: number, cols: number) =>
    stored(scope(() => randn([rows, cols], { generator: g, std: 0.02, backend })));
  const c = (n: number, v: number) => keep(full([n], v, { backend }));
  const kaiming = (rows: number, cols: number) => {
    const bound = Math.sqrt(3) * Math.sqrt(2 / cols);
    return stored(scope(() => tensor(g.uniform(rows * cols, -bound, bound), { shape: [rows, cols], backend })));
  };
  const lambdas = (out: number): Lambdas => ({
    d: c(R, 0.1).setRequiresGrad(true),
    b: c(out, 0).setRequiresGrad(true),
  });
  const blocks = Array.from({ length: L }, () => ({
    ln1w: c(C, 1).setRequiresGrad(mode === 'ln'),
    ln1b: c(C, 0),
    attnW: w(3 * C, C),
    attnB: c(3 * C, 0),
    projW: w(C, C),
    projB: c(C, 0),
    ln2w: c(C, 1),
    ln2b: c(C, 0),
    fcW: w(4 * C, C),
    fcB: c(4 * C, 0),
    fcProjW: w(C, 4 * C),
    fcProjB: c(C, 0),
    vera: mode === 'vera' ? { attn: lambdas(3 * C), proj: lambdas(C) } : null,
  }));
  const proj = mode === 'vera' ? { a: kaiming(R, C), b: kaiming(3 * C, R) } : null;
  return { blocks, lnf: [c(C, 1), c(C, 0)], proj };
}

/** base(x), plus PEFT's VeRA term λ_b ⊙ (B_s · (λ_d ⊙ (A_s · x))) when the layer has one. */
function adapted(x: Tensor, w: Tensor, bias: Tensor, l: Lambdas | undefined, p: Projections | null): Tensor {
  const y = ops.linear(x, w, bias);
  if (!l || !p) return y;
  const a = ops.slice(p.a, 1, 0, w.shape[1]!);
  const b = ops.slice(p.b, 0, 0, w.shape[0]!);
  return ops.add(y, ops.mul(ops.linear(ops.mul(ops.linear(x, a), l.d), b), l.b));
}

function forward(stack: ReturnType<typeof makeStack>, x: Tensor): Tensor {
  let h = x; // (B, T, C)
  for (const b of stack.blocks) {
    const qkv = ops.reshape(adapted(ops.layerNorm(h, b.ln1w, b.ln1b), b.attnW, b.attnB, b.vera?.attn, stack.proj), [
      B,
      T,
      3,
      H,
      C / H,
    ]);
    const [q, k, v] = ops.split(qkv, [1, 1, 1], 2).map((t) => ops.squeeze(t, 2)); // (B, T, H, D) views
    const att = ops.reshape(ops.attention(q!, k!, v!, { causal: true }), [B, T, C]);
    h = ops.add(h, adapted(att, b.projW, b.projB, b.vera?.proj, stack.proj));
    const mlp = ops.linear(
      ops.geluTanh(ops.linear(ops.layerNorm(h, b.ln2w, b.ln2b), b.fcW, b.fcB)),
      b.fcProjW,
      b.fcProjB,
    );
    h = ops.add(h, mlp);
  }
  return ops.layerNorm(h, stack.lnf[0], stack.lnf[1]);
}

export async function measureOurs(
  backend: Backend,
  threads: number,
  mode: Mode = 'ln',
  dtype: StepDType = 'f32',
): Promise<{ ms: number; loss: number }> {
  const prev = backend.getThreads?.() ?? 1;
  backend.setThreads?.(threads);
  const stack = makeStack(backend, mode, dtype);
  const x = keep(tensor(new Generator(1).normal(B * T * C), { shape: [B, T, C], backend }));
  const trainable = stack.blocks.flatMap((b) =>
    b.vera ? [b.vera.attn.d, b.vera.attn.b, b.vera.proj.d, b.vera.proj.b] : [b.ln1w],
  );
  const opt = new AdamW(trainable, { lr: 1e-3 });
  let loss = 0;
  const step = () =>
    scope(() => {
      opt.zeroGrad();
      const y = forward(stack, x);
      const l = ops.mean(ops.square(y));
      backward(l);
      opt.step();
      loss = l.item();
    });
  const t = await timeIt(step, { warmup: 3, runs: STEPS });
  opt.dispose();
  for (const { vera, ...weights } of stack.blocks) {
    for (const p of Object.values(weights)) p.dispose();
    for (const l of vera ? [vera.attn, vera.proj] : []) [l.d, l.b].forEach((p) => p.dispose());
  }
  stack.lnf.forEach((p) => p.dispose());
  if (stack.proj) [stack.proj.a, stack.proj.b].forEach((p) => p.dispose());
  x.dispose();
  backend.setThreads?.(prev);
  return { ms: t.median_ms, loss };
}

const caseName = (mode: Mode, dtype: StepDType, threads: number): string =>
  `B=${B} T=${T} C=${C} L=${L}, ${mode === 'vera' ? `VeRA r=${R} on attn.c_attn and attn.c_proj (λ train)` : 'ln_1.weight trains'}, ${dtype}, ${threads} thread${threads > 1 ? 's' : ''}`;

export async function run(): Promise<BenchRow[]> {
  const name = (process.env['VERA_BENCH_BACKEND'] ?? 'native') as BackendName;
  const backend = getBackend(name);
  const gemm = backend.info?.()['bf16Gemm'];
  const rows: BenchRow[] = [];
  for (const mode of ['ln', 'vera'] as const) {
    for (const threads of [1, 2]) {
      const f32ms: Record<StepDType, number> = { f32: 0, bf16: 0 };
      for (const dtype of ['f32', 'bf16'] as const) {
        note(`gpt2-step: ${mode}, ${dtype}, ${threads} thread(s), ${name} backend`);
        const ours = await measureOurs(backend, threads, mode, dtype);
        f32ms[dtype] = ours.ms;
        const peer = runPeer(
          PEER_PYTHON,
          ['bench/peers/torch_gpt2_step.py', String(threads), String(STEPS), '3', mode, dtype],
          threadEnv(threads),
        );
        const p = peer.ok ? peer.lines[0]! : null;
        const recipe = dtype === 'bf16' ? 'torch.autocast(bfloat16), frozen weights stored bf16; ' : '';
        rows.push(
          emit({
            bench: 'gpt2-step',
            case: caseName(mode, dtype, threads),
            ours: ours.ms,
            peer: p ? Number(p['median_ms']) : null,
            peer_name: p ? `PyTorch ${String(p['torch'])}${dtype === 'bf16' ? ' autocast bf16' : ''}` : 'PyTorch',
            unit: 'ms/step',
            ...(p
              ? { peer_detail: `${recipe}${String(p['attention'])} attention; ${String(p['blas'])}` }
              : { peer_error: peer.ok ? '' : peer.reason }),
            ...(dtype === 'bf16' && gemm ? { ours_bf16_gemm: gemm } : {}),
            ours_loss: ours.loss,
            peer_loss: p ? Number(p['loss']) : null,
          }),
        );
      }
      rows.push(
        emit({
          bench: 'gpt2-step',
          case: `${caseName(mode, 'bf16', threads)}: our bf16 step vs our f32 step`,
          ours: f32ms.bf16,
          peer: f32ms.f32,
          peer_name: 'vera-ts, the same step in f32',
          unit: 'ms/step',
          ...(gemm ? { ours_bf16_gemm: gemm } : {}),
        }),
      );
    }
  }
  return rows;
}
