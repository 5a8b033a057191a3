// Loading a Llama-shaped ~1.1B-parameter bf16 checkpoint (random weights, built once by this file under
// build/bench/models and reused; bench/generate.ts uses it too): seconds and peak RSS growth of
// loadModel(dir, { dtype: 'f32' }) and { dtype: 'bf16' }, each in a fresh child process so that the peak
// is the load's own, against a minimal PyTorch 1.13 loader of the same file (bench/peers/torch_load.py:
// a safetensors header parser and one readinto per tensor; transformers is not installed here).

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BackendName, getBackend } from '../src/backends/registry.js';
import { JsBackend } from '../src/backends/js/index.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { loadModel } from '../src/models/auto.js';
import { parameterBytes } from '../src/models/storage.js';
import { tensor } from '../src/tensor/creation.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { type BenchRow, PEER_PYTHON, ROOT, emit, median, note, runPeer, threadEnv } from './lib.js';

/** A model for the benches: config.json fields, and the tensors to write (name, shape, fill). */
export interface ModelSpec {
  name: string;
  /** Bumped when the spec changes, so a cached directory is rebuilt. */
  version: number;
  config: Record<string, unknown>;
  dtype: 'bf16' | 'f32';
  tensors: [name: string, shape: number[], fill: 'random' | 'ones' | 'zeros'][];
}

/** Llama-3.2-1B's block shapes with a 32000-token vocabulary and an untied head: 1.10 B parameters. */
export const LLAMA_1B: ModelSpec = (() => {
  const [c, m, layers, heads, kv, vocab] = [2048, 8192, 16, 32, 8, 32000];
  const d = c / heads;
  const tensors: ModelSpec['tensors'] = [['model.embed_tokens.weight', [vocab, c], 'random']];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}.`;
    tensors.push(
      [`${p}input_layernorm.weight`, [c], 'ones'],
      [`${p}self_attn.q_proj.weight`, [heads * d, c], 'random'],
      [`${p}self_attn.k_proj.weight`, [kv * d, c], 'random'],
      [`${p}self_attn.v_proj.weight`, [kv * d, c], 'random'],
      [`${p}self_attn.o_proj.weight`, [c, heads * d], 'random'],
      [`${p}post_attention_layernorm.weight`, [c], 'ones'],
      [`${p}mlp.gate_proj.weight`, [m, c], 'random'],
      [`${p}mlp.up_proj.weight`, [m, c], 'random'],
      [`${p}mlp.down_proj.weight`, [c, m], 'random'],
    );
  }
  tensors.push(['model.norm.weight', [c], 'ones'], ['lm_head.weight', [vocab, c], 'random']);
  return {
    name: 'llama-1b-bf16',
    version: 1,
    dtype: 'bf16',
    config: {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: c,
      intermediate_size: m,
      num_hidden_layers: layers,
      num_attention_heads: heads,
      num_key_value_heads: kv,
      head_dim: d,
      vocab_size: vocab,
      hidden_act: 'silu',
      max_position_embeddings: 2048,
      rms_norm_eps: 1e-5,
      rope_theta: 10000.0,
      tie_word_embeddings: false,
      attention_bias: false,
      mlp_bias: false,
      bos_token_id: 1,
      eos_token_id: 2,
      torch_dtype: 'bfloat16',
    },
    tensors,
  };
})();

/** GPT-2 small (124 M parameters, F32 as openai-community/gpt2 ships it; lm_head tied to wte). */
export const GPT2_SMALL: ModelSpec = (() => {
  const [c, layers, heads, vocab, positions] = [768, 12, 12, 50257, 1024];
  const tensors: ModelSpec['tensors'] = [
    ['transformer.wte.weight', [vocab, c], 'random'],
    ['transformer.wpe.weight', [positions, c], 'random'],
  ];
  for (let i = 0; i < layers; i++) {
    const p = `transformer.h.${i}.`;
    tensors.push(
      [`${p}ln_1.weight`, [c], 'ones'],
      [`${p}ln_1.bias`, [c], 'zeros'],
      [`${p}attn.c_attn.weight`, [c, 3 * c], 'random'],
      [`${p}attn.c_attn.bias`, [3 * c], 'zeros'],
      [`${p}attn.c_proj.weight`, [c, c], 'random'],
      [`${p}attn.c_proj.bias`, [c], 'zeros'],
      [`${p}ln_2.weight`, [c], 'ones'],
      [`${p}ln_2.bias`, [c], 'zeros'],
      [`${p}mlp.c_fc.weight`, [c, 4 * c], 'random'],
      [`${p}mlp.c_fc.bias`, [4 * c], 'zeros'],
      [`${p}mlp.c_proj.weight`, [4 * c, c], 'random'],
      [`${p}mlp.c_proj.bias`, [c], 'zeros'],
    );
  }
  tensors.push(['transformer.ln_f.weight', [c], 'ones'], ['transformer.ln_f.bias', [c], 'zeros']);
  return {
    name: 'gpt2-small-f32',
    version: 1,
    dtype: 'f32',
    config: {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      n_embd: c,
      n_layer: layers,
      n_head: heads,
      n_positions: positions,
      n_ctx: positions,
      vocab_size: vocab,
      activation_function: 'gelu_new',
      layer_norm_epsilon: 1e-5,
      bos_token_id: 50256,
      eos_token_id: 50256,
      tie_word_embeddings: true,
      torch_dtype: 'float32',
    },
    tensors,
  };
})();

/**
 * Fills `out` with uniform values of standard deviation `std` (xorshift32; a bench needs random-looking
 * weights of the right scale, not torch's stream, and this makes a billion of them in seconds).
 */
function uniformFill(out: Float32Array, std: number, seed: number): void {
  let s = seed >>> 0 || 1;
  const scale = (std * Math.sqrt(3)) / 2 ** 31;
  for (let i = 0; i < out.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s | 0) * scale;
  }
}

/** The bench models' directory: build/bench/models/<name>, written once (atomically) and reused. */
export function ensureModel(spec: ModelSpec): string {
  const dir = join(ROOT, 'build', 'bench', 'models', spec.name);
  const stamp = join(dir, 'bench-model.json');
  const want = JSON.stringify({ version: spec.version, config: spec.config });
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === want) return dir;
  const numel = spec.tensors.reduce((n, [, shape]) => n + shape.reduce((a, b) => a * b, 1), 0);
  note(`building ${spec.name} (${(numel / 1e9).toFixed(2)} B parameters, ${spec.dtype}) in ${dir}`);
  const t0 = performance.now();
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const js = new JsBackend(); // host memory: writeSafetensors reads the arrays directly
  const tensors = new Map<string, Tensor>();
  spec.tensors.forEach(([name, shape, fill], i) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const f = new Float32Array(n);
    if (fill === 'random') uniformFill(f, 0.02, 0x9e3779b9 ^ (i * 2654435761));
    else if (fill === 'ones') f.fill(1);
    if (spec.dtype === 'f32') tensors.set(name, tensor(f, { shape, backend: js }));
    else {
      // Truncation to bf16 (the high half of each float): exact in bf16, so every reader sees the same values.
      const bits = new Uint16Array(n);
      const u32 = new Uint32Array(f.buffer);
      for (let j = 0; j < n; j++) bits[j] = u32[j]! >>> 16;
      tensors.set(name, tensor(bits, { dtype: 'bf16', shape, backend: js }));
    }
  });
  writeSafetensors(join(tmp, 'model.safetensors'), tensors, { format: 'pt' });
  for (const t of tensors.values()) t.dispose();
  writeFileSync(join(tmp, 'config.json'), `${JSON.stringify(spec.config, null, 2)}\n`);
  writeFileSync(join(tmp, 'bench-model.json'), want);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  note(`built ${spec.name} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return dir;
}

interface ChildJob {
  dir: string;
  dtype: 'f32' | 'bf16';
  backend: BackendName;
  warmup: string;
}

interface LoadResult {
  seconds: number;
  /** Peak RSS minus the RSS just before the load, in MiB. */
  peak_mib: number;
  params_mib: number;
}

/**
 * This process's peak RSS in bytes: VmHWM, the high-water mark of its own address space. (getrusage's
 * maxRSS is no good in a child: Linux carries the pre-exec high-water mark over exec, and a child
 * forked from a bench runner holding gigabytes starts with the runner's RSS.)
 */
export function peakRss(): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}

/** Child mode: a warm-up load of a tiny model, then the timed load, printing one JSON line. */
function child(job: ChildJob): void {
  const backend = getBackend(job.backend);
  loadModel(job.warmup, { backend, dtype: job.dtype }).dispose(); // code paths and allocator set up
  const base = process.memoryUsage().rss;
  const t0 = performance.now();
  const model = loadModel(job.dir, { backend, dtype: job.dtype });
  const seconds = (performance.now() - t0) / 1000;
  const peak = peakRss();
  const result: LoadResult = {
    seconds,
    peak_mib: (peak - base) / 2 ** 20,
    params_mib: parameterBytes(model) / 2 ** 20,
  };
  console.log(JSON.stringify(result));
  model.dispose();
}

const CHILD_ENV = 'VERA_BENCH_LOAD_CHILD';
const job = process.env[CHILD_ENV];
if (job) child(JSON.parse(job) as ChildJob);

function measureOurs(job: ChildJob): LoadResult | string {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url)], {
    cwd: ROOT,
    env: { ...process.env, [CHILD_ENV]: JSON.stringify(job) },
    encoding: 'utf8',
    maxBuffer: 16 << 20,
    timeout: 10 * 60_000,
  });
  const line = r.stdout?.split('\n').find((l) => l.startsWith('{'));
  if (r.status !== 0 || !line)
    return `child exited ${r.status ?? r.signal}: ${(r.stderr ?? '').trim().split('\n').pop()}`;
  return JSON.parse(line) as LoadResult;
}

const RUNS = 3;

export async function run(): Promise<BenchRow[]> {
  const dir = ensureModel(LLAMA_1B);
  const backend = (process.env['VERA_BENCH_BACKEND'] ?? 'native') as BackendName;
  const warmup = join(ROOT, 'test', 'parity', 'fixtures', 'models', 'llama-tied-bf16');
  const threads = 2;
  const rows: BenchRow[] = [];
  for (const dtype of ['f32', 'bf16'] as const) {
    const ours: LoadResult[] = [];
    const peer: Record<string, unknown>[] = [];
    let oursError = '';
    let peerError = '';
    // Alternate ours and the peer so that both see the same machine load and page cache.
    for (let i = 0; i < RUNS; i++) {
      note(`load: ${dtype} run ${i + 1}/${RUNS}`);
      const o = measureOurs({ dir, dtype, backend, warmup });
      if (typeof o === 'string') oursError = o;
      else ours.push(o);
      const p = runPeer(PEER_PYTHON, ['bench/peers/torch_load.py', String(threads), dir, dtype], threadEnv(threads));
      if (p.ok) peer.push(p.lines[0]!);
      else peerError = p.reason;
    }
    const p0 = peer[0];
    const common = {
      bench: 'load',
      peer_name: p0 ? `PyTorch ${String(p0['torch'])} raw safetensors read` : 'PyTorch 1.13 raw safetensors read',
      ...(p0 ? { peer_detail: String(p0['detail']) } : { peer_error: peerError }),
      ...(ours.length === 0 ? { ours_error: oursError } : {}),
      runs: RUNS,
    };
    const label = `Llama 1.1B bf16 file → ${dtype} parameters`;
    const med = (xs: LoadResult[], k: keyof LoadResult) => (xs.length ? median(xs.map((x) => x[k])) : null);
    const pmed = (k: string) => (peer.length ? median(peer.map((x) => Number(x[k]))) : null);
    rows.push(
      emit({
        ...common,
        case: `${label}: load time`,
        ours: med(ours, 'seconds'),
        peer: pmed('seconds'),
        unit: 's',
        ours_samples: ours.map((x) => Number(x.seconds.toFixed(3))),
        peer_samples: peer.map((x) => Number(Number(x['seconds']).toFixed(3))),
      }),
      emit({
        ...common,
        case: `${label}: peak RSS growth`,
        ours: med(ours, 'peak_mib'),
        peer: pmed('peak_mib'),
        unit: 'MiB',
        params_mib: med(ours, 'params_mib'),
        peer_params_mib: pmed('params_mib'),
      }),
    );
  }
  return rows;
}
