// cuDNN's fused attention on the cuda backend (native/cuda/attention_cudnn.cc): bf16 training attention
// with lowPrecision goes to cuDNN (its call counters move) and agrees with our tensor-core kernels
// (VERA_CUDA_ATTENTION=own, read per call) within the lowPrecision tolerance of the conformance suite;
// a call outside the mapping is declined with its reason and still answered by our kernels. Skipped
// where the cuda backend does not load or was built without cuDNN; VERA_REQUIRE_CUDNN=1 makes the
// latter fail (the GPU host's runs set it).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { AttentionOpts, Backend, View } from '../../src/backends/backend.js';
import type { CudaBackend } from '../../src/backends/cuda/index.js';
import { cast } from '../../src/ops/elementwise.js';
import { Generator } from '../../src/tensor/random.js';
import { tensor, zeros } from '../../src/tensor/creation.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { AttnCase } from '../helpers/attention.js';
import { cudaOrSkip } from '../helpers/cuda.js';

const { backend, skip: noCuda } = cudaOrSkip();
const cuda = backend as CudaBackend | null;

function cudnnSkip(): string | false {
  if (noCuda) return noCuda;
  const s = cuda!.cudnnAttention();
  if (s.built) return false;
  if (process.env['VERA_REQUIRE_CUDNN'] === '1')
    throw new Error('the cuda addon was built without cuDNN (VERA_REQUIRE_CUDNN=1)');
  return 'the cuda addon was built without cuDNN attention (scripts/build-cuda.mjs says why)';
}
const skip = cudnnSkip();

type Shape = Pick<AttnCase, 'b' | 'tq' | 'tk' | 'hq' | 'hkv' | 'd'>;

function bf16(be: Backend, shape: number[], seed: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const f = tensor(new Generator(seed).uniform(n, -1.5, 1.5), { shape, dtype: 'f32', backend: be });
  const t = cast(f, 'bf16');
  f.dispose();
  return t;
}

/** Forward and backward on bf16 views; every output read back as f32 numbers. */
function run(be: Backend, s: Shape, opts: AttentionOpts): Record<'out' | 'lse' | 'dq' | 'dk' | 'dv', number[]> {
  const ins = [
    bf16(be, [s.b, s.tq, s.hq, s.d], 1),
    bf16(be, [s.b, s.tk, s.hkv, s.d], 2),
    bf16(be, [s.b, s.tk, s.hkv, s.d], 3),
    bf16(be, [s.b, s.tq, s.hq, s.d], 4),
  ];
  const outs = {
    out: zeros([s.b, s.tq, s.hq, s.d], { dtype: 'bf16', backend: be }),
    lse: zeros([s.b, s.hq, s.tq], { dtype: 'f32', backend: be }),
    dq: zeros([s.b, s.tq, s.hq, s.d], { dtype: 'bf16', backend: be }),
    dk: zeros([s.b, s.tk, s.hkv, s.d], { dtype: 'bf16', backend: be }),
    dv: zeros([s.b, s.tk, s.hkv, s.d], { dtype: 'bf16', backend: be }),
  };
  const w = (t: Tensor): View => t.view('test');
  const [q, k, v, dout] = ins.map(w) as [View, View, View, View];
  be.attention!(w(outs.out), w(outs.lse), q, k, v, opts);
  be.attentionBackward!(w(outs.dq), w(outs.dk), w(outs.dv), dout, q, k, v, w(outs.out), w(outs.lse), opts);
  const res = Object.fromEntries(
    Object.entries(outs).map(([key, t]) => {
      const f = t.dtype === 'f32' ? t : cast(t, 'f32');
      const nums = f.toNumbers();
      if (f !== t) f.dispose();
      return [key, nums];
    }),
  ) as Record<'out' | 'lse' | 'dq' | 'dk' | 'dv', number[]>;
  for (const t of [...ins, ...Object.values(outs)]) t.dispose();
  return res;
}

/** With VERA_CUDA_ATTENTION=own for the duration of f: our tensor-core kernels. */
function withOwn<T>(f: () => T): T {
  const before = process.env['VERA_CUDA_ATTENTION'];
  process.env['VERA_CUDA_ATTENTION'] = 'own';
  try {
    return f();
  } finally {
    if (before === undefined) delete process.env['VERA_CUDA_ATTENTION'];
    else process.env['VERA_CUDA_ATTENTION'] = before;
  }
}

// |got − want| ≤ 1.5% of max|want| (lse: 0.02 absolute), the conformance suite's lowPrecision bound.
function agree(got: number[], want: number[], what: string, frac: number, atol = 0): void {
  let scale = 0;
  for (const x of want) scale = Math.max(scale, Math.abs(x));
  const bound = Math.max(frac * scale, atol);
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    assert.ok(d <= bound, `${what}: element ${i} cuDNN ${got[i]} ours ${want[i]} (|diff| ${d} > ${bound})`);
  }
}

describe('cuDNN fused attention (cuda)', () => {
  const opts = (s: Shape, causal: boolean, window = 0): AttentionOpts => ({
    scale: 1 / Math.sqrt(s.d),
    causal,
    window,
    keyMask: null,
    dropout: null,
    lowPrecision: true,
  });

  test('takes bf16 training attention and agrees with our kernels', { skip }, () => {
    const cases: [Shape, boolean, number][] = [
      [{ b: 2, tq: 256, tk: 256, hq: 8, hkv: 2, d: 128 }, true, 0], // Llama: causal, grouped heads
      [{ b: 1, tq: 200, tk: 200, hq: 4, hkv: 4, d: 64 }, true, 48], // Mistral's sliding window
      [{ b: 3, tq: 40, tk: 72, hq: 2, hkv: 1, d: 64 }, false, 0], // BERT/ViT: not causal, Tq ≠ Tk
    ];
    for (const [s, causal, window] of cases) {
      const label = JSON.stringify({ ...s, causal, window });
      const before = cuda!.cudnnAttention();
      const got = run(cuda!, s, opts(s, causal, window));
      const after = cuda!.cudnnAttention();
      assert.equal(after.forward, before.forward + 1, `${label}: forward went to cuDNN (${after.reason})`);
      assert.equal(after.backward, before.backward + 1, `${label}: backward went to cuDNN (${after.reason})`);
      const want = withOwn(() => run(cuda!, s, opts(s, causal, window)));
      assert.equal(cuda!.cudnnAttention().forward, after.forward, 'VERA_CUDA_ATTENTION=own keeps cuDNN out');
      for (const key of ['out', 'dq', 'dk', 'dv'] as const) agree(got[key], want[key], `${label} ${key}`, 0.015);
      agree(got.lse, want.lse, `${label} lse`, 0, 0.02);
    }
    assert.ok(cuda!.cudnnAttention().version >= 90000, 'cuDNN 9 or later is loaded');
  });

  test('declines a call outside its mapping, which our kernels answer', { skip }, () => {
    const s = { b: 1, tq: 64, tk: 64, hq: 2, hkv: 2, d: 64 };
    const before = cuda!.cudnnAttention();
    const got = run(cuda!, s, opts(s, false, 16)); // a window without causal
    const after = cuda!.cudnnAttention();
    assert.equal(after.forward, before.forward);
    assert.ok(after.declined >= before.declined + 2, 'forward and backward declined');
    assert.match(after.reason, /window without causal/);
    const want = withOwn(() => run(cuda!, s, opts(s, false, 16)));
    assert.deepEqual(got, want, 'the same kernels answered both');
  });
});
