// One training step of a GPT-2-small-shaped stack with a frozen base, against PyTorch on the same
// machine (bench/peers/torch_gpt2_step.py computes exactly the same function): 12 pre-LayerNorm
// blocks, C = 768, 12 heads, T = 128, B = 4, a final ln_f, loss = mean(y²); only each block's
// ln_1.weight trains (one vector per layer, as VeRA's λ vectors), so the backward computes every
// activation gradient and no weight gradient. A step is forward, backward and an AdamW update.

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
}

function makeStack(backend: Backend): { blocks: Block[]; lnf: [Tensor, Tensor] } {
  const g = new Generator(0);
  const w = (rows: number, cols: number) => keep(randn([rows, cols], { generator: g, std: 0.02, backend }));
  const c = (n: number, v: number) => keep(full([n], v, { backend }));
  const blocks = Array.from({ length: L }, () => ({
    ln1w: c(C, 1).setRequiresGrad(true),
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
  }));
  return { blocks, lnf: [c(C, 1), c(C, 0)] };
}

function forward(stack: ReturnType<typeof makeStack>, x: Tensor): Tensor {
  let h = x; // (B, T, C)
  for (const b of stack.blocks) {
    const qkv = ops.reshape(ops.linear(ops.layerNorm(h, b.ln1w, b.ln1b), b.attnW, b.attnB), [B, T, 3, H, C / H]);
    const [q, k, v] = ops.split(qkv, [1, 1, 1], 2).map((t) => ops.squeeze(t, 2)); // (B, T, H, D) views
    const att = ops.reshape(ops.attention(q!, k!, v!, { causal: true }), [B, T, C]);
    h = ops.add(h, ops.linear(att, b.projW, b.projB));
    const mlp = ops.linear(
      ops.geluTanh(ops.linear(ops.layerNorm(h, b.ln2w, b.ln2b), b.fcW, b.fcB)),
      b.fcProjW,
      b.fcProjB,
    );
    h = ops.add(h, mlp);
  }
  return ops.layerNorm(h, stack.lnf[0], stack.lnf[1]);
}

export async function measureOurs(backend: Backend, threads: number): Promise<{ ms: number; loss: number }> {
  const prev = backend.getThreads();
  backend.setThreads(threads);
  const stack = makeStack(backend);
  const x = keep(tensor(new Generator(1).normal(B * T * C), { shape: [B, T, C], backend }));
  const trainable = stack.blocks.map((b) => b.ln1w);
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
  for (const b of stack.blocks) for (const p of Object.values(b)) p.dispose();
  stack.lnf.forEach((p) => p.dispose());
  x.dispose();
  backend.setThreads(prev);
  return { ms: t.median_ms, loss };
}

export async function run(): Promise<BenchRow[]> {
  const name = (process.env['VERA_BENCH_BACKEND'] ?? 'native') as BackendName;
  const backend = getBackend(name);
  const rows: BenchRow[] = [];
  for (const threads of [1, 2]) {
    note(`gpt2-step: ${threads} thread(s), ${name} backend`);
    const ours = await measureOurs(backend, threads);
    const peer = runPeer(
      PEER_PYTHON,
      ['bench/peers/torch_gpt2_step.py', String(threads), String(STEPS)],
      threadEnv(threads),
    );
    const p = peer.ok ? peer.lines[0]! : null;
    rows.push(
      emit({
        bench: 'gpt2-step',
        case: `B=${B} T=${T} C=${C} L=${L}, ${threads} thread${threads > 1 ? 's' : ''}`,
        ours: ours.ms,
        peer: p ? Number(p['median_ms']) : null,
        peer_name: p ? `PyTorch ${String(p['torch'])}` : 'PyTorch',
        unit: 'ms/step',
        ...(p
          ? { peer_detail: `${String(p['attention'])} attention; ${String(p['blas'])}` }
          : { peer_error: peer.ok ? '' : peer.reason }),
        ours_loss: ours.loss,
        peer_loss: p ? Number(p['loss']) : null,
      }),
    );
  }
  return rows;
}
