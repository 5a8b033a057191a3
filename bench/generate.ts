// Greedy generation with the KV cache, batch 1: prompt processing (prefill) and decoding throughput of a
// GPT-2-small-shaped model (F32) and a Llama-shaped 1.1B model (bf16 file, loaded with f32 and with bf16
// parameters), random weights built once by bench/load.ts, against the same architectures written in
// plain PyTorch 1.13 reading the same files (bench/peers/torch_generate.py); the first generated tokens
// of both are compared as a sanity check (same weights, same greedy decoding). Within a round, prefill is
// the median of 3 runs and decode 1 / the median step time; each side reports its better of 2 rounds.

import { type BackendName, getBackend } from '../src/backends/registry.js';
import { decodeSteps } from '../src/generate/generate.js';
import { loadModel } from '../src/models/auto.js';
import type { PreTrainedModel } from '../src/models/pretrained.js';
import { GPT2_SMALL, LLAMA_1B, type ModelSpec, ensureModel } from './load.js';
import { type BenchRow, PEER_PYTHON, emit, median, note, runPeer, threadEnv } from './lib.js';

const PROMPT_TOKENS = 128;
const PREFILL_RUNS = 3;
/** Rounds of (ours, peer); each side reports its best round (the machine is shared: see BENCHMARKS.md). */
const ROUNDS = 2;

interface Case {
  label: string;
  spec: ModelSpec;
  dtype: 'f32' | 'bf16';
  threads: number;
  newTokens: number;
}

/** New tokens per case: 64, and 32 for the 1.1B model, whose f32 decode reads 4.4 GB per token. */
export const CASES: readonly Case[] = [
  { label: 'GPT-2 small (124M) f32', spec: GPT2_SMALL, dtype: 'f32', threads: 1, newTokens: 64 },
  { label: 'GPT-2 small (124M) f32', spec: GPT2_SMALL, dtype: 'f32', threads: 2, newTokens: 64 },
  { label: 'Llama 1.1B, f32 parameters', spec: LLAMA_1B, dtype: 'f32', threads: 2, newTokens: 32 },
  { label: 'Llama 1.1B, bf16 parameters', spec: LLAMA_1B, dtype: 'bf16', threads: 2, newTokens: 32 },
];

/** A fixed pseudo-random prompt (the same for ours and the peer). */
function promptIds(vocab: number, n: number): number[] {
  let s = 12345;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) % vocab;
  });
}

interface Measured {
  prefillTokS: number;
  prefillSamplesS: number[];
  decodeTokS: number;
  decodeMeanTokS: number;
  tokens: number[];
}

/** Runs the generator, timing each step (step 0 is the prefill, the others decode one token each). */
function timedSteps(model: PreTrainedModel, prompt: number[], newTokens: number): { ms: number[]; tokens: number[] } {
  const ms: number[] = [];
  const tokens: number[] = [];
  let t0 = performance.now();
  for (const step of decodeSteps(model, [prompt], { maxNewTokens: newTokens, stopTokenIds: [] })) {
    ms.push(performance.now() - t0);
    tokens.push(step.tokens[0]!);
    t0 = performance.now();
  }
  return { ms, tokens };
}

/** One round: a warm-up and PREFILL_RUNS timed prefills (median), then one generation (median step). */
function measureOurs(model: PreTrainedModel, c: Case, prompt: number[]): Measured {
  const prefill: number[] = [];
  for (let i = 0; i <= PREFILL_RUNS; i++) prefill.push(timedSteps(model, prompt, 1).ms[0]! / 1000); // run 0 warms up
  const { ms, tokens } = timedSteps(model, prompt, c.newTokens);
  const decode = ms.slice(1).map((x) => x / 1000);
  const samples = prefill.slice(1);
  return {
    prefillTokS: prompt.length / median(samples),
    prefillSamplesS: samples,
    decodeTokS: 1 / median(decode),
    decodeMeanTokS: decode.length / decode.reduce((a, b) => a + b, 0),
    tokens,
  };
}

/** How many leading generated tokens agree. */
function agreement(a: readonly number[], b: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

const round = (x: number): number => Number(x.toPrecision(4));

export async function run(): Promise<BenchRow[]> {
  const backend = getBackend((process.env['VERA_BENCH_BACKEND'] ?? 'native') as BackendName);
  const rows: BenchRow[] = [];
  for (const c of CASES) {
    const dir = ensureModel(c.spec);
    const prompt = promptIds(Number(c.spec.config['vocab_size']), PROMPT_TOKENS);
    const threads = `${c.threads} thread${c.threads > 1 ? 's' : ''}`;
    const prev = backend.getThreads?.() ?? 1;
    backend.setThreads?.(c.threads);
    const model = loadModel(dir, { backend, dtype: c.dtype });
    const ours: Measured[] = [];
    const peers: Record<string, unknown>[] = [];
    let peerError = '';
    try {
      // Rounds alternate ours and the peer, so that both meet the shared machine's busy and quiet spells.
      for (let r = 0; r < ROUNDS; r++) {
        note(`generate: ${c.label}, ${threads}: round ${r + 1}/${ROUNDS}, ours`);
        ours.push(measureOurs(model, c, prompt));
        note(`generate: ${c.label}, ${threads}: round ${r + 1}/${ROUNDS}, PyTorch`);
        const peer = runPeer(
          PEER_PYTHON,
          [
            'bench/peers/torch_generate.py',
            String(c.threads),
            dir,
            c.dtype,
            prompt.join(','),
            String(c.newTokens),
            String(PREFILL_RUNS),
          ],
          threadEnv(c.threads),
        );
        if (peer.ok) peers.push(peer.lines[0]!);
        else peerError = peer.reason;
      }
    } finally {
      model.dispose();
      backend.emptyCache(); // the freed weights go back to the system, not to the next case's peer
      backend.setThreads?.(prev);
    }
    const p = peers[0];
    const peerTokens = p ? (p['tokens'] as number[]) : [];
    const agree = agreement(ours[0]!.tokens, peerTokens);
    const peerName = p
      ? `PyTorch ${String(p['torch'])} ${c.dtype === 'bf16' ? 'bf16 weights and compute' : 'f32'}`
      : 'PyTorch 1.13';
    const detail = p
      ? `${c.dtype === 'bf16' ? 'oneDNN bf16 GEMMs, bf16 activations; ours: bf16 GEMMs with f32 accumulation, f32 activations' : String(p['blas']).split(' (')[0]}; first ${peerTokens.length} greedy tokens: ${agree} agree with ours`
      : '';
    const best = (xs: number[]) => (xs.length > 0 ? Math.max(...xs) : null);
    const gemm = c.dtype === 'bf16' ? backend.info?.()['bf16Gemm'] : undefined;
    const common = {
      bench: 'generate',
      peer_name: peerName,
      ...(gemm ? { ours_bf16_gemm: gemm } : {}),
      ...(p ? { peer_detail: detail } : { peer_error: peerError }),
      unit: 'tokens/s',
      threads: c.threads,
      new_tokens: c.newTokens,
      tokens_agree: `${agree}/${Math.min(ours[0]!.tokens.length, peerTokens.length)}`,
    };
    rows.push(
      emit({
        ...common,
        case: `${c.label}, ${threads}: prefill (${PROMPT_TOKENS}-token prompt)`,
        ours: best(ours.map((o) => o.prefillTokS)),
        peer: best(peers.map((x) => Number(x['prefill_tok_s']))),
        ours_rounds: ours.map((o) => round(o.prefillTokS)),
        peer_rounds: peers.map((x) => round(Number(x['prefill_tok_s']))),
      }),
      emit({
        ...common,
        case: `${c.label}, ${threads}: decode (${c.newTokens} new tokens)`,
        ours: best(ours.map((o) => o.decodeTokS)),
        peer: best(peers.map((x) => Number(x['decode_tok_s']))),
        ours_rounds: ours.map((o) => round(o.decodeTokS)),
        peer_rounds: peers.map((x) => round(Number(x['decode_tok_s']))),
        ours_mean_tok_s: ours.map((o) => round(o.decodeMeanTokS)),
        peer_mean_tok_s: peers.map((x) => round(Number(x['decode_mean_tok_s']))),
        ours_first_tokens: ours[0]!.tokens.slice(0, 8),
        peer_first_tokens: peerTokens.slice(0, 8),
      }),
    );
  }
  return rows;
}
