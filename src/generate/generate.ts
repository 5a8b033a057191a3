// Autoregressive generation for causal LMs: left-padded batches (position ids from the mask, padded keys
// masked), a KV cache sized for prompt + new tokens, greedy or seeded sampling, stop tokens, streaming.
// Each step runs under noGrad and scope() and reads one logits row per sequence to the host: flat memory.

import { noGrad } from '../autograd/graph.js';
import { tensor } from '../tensor/creation.js';
import { Generator as RandomGenerator, defaultGenerator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { PreTrainedModel } from '../models/pretrained.js';
import { KVCache } from './kv-cache.js';
import { type SamplingOptions, checkSamplingOptions, nextToken } from './sampling.js';

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most per sequence. Default 20. */
  maxNewTokens?: number;
  /** A sequence ends after producing one of these. Default: the config's eos_token_id. */
  stopTokenIds?: readonly number[];
  /** Fills left padding and finished rows. Default: pad_token_id, else the first stop token, else 0. */
  padTokenId?: number;
  /** Seed of the sampling generator (a fresh Generator(seed)); or pass `generator`. */
  seed?: number;
  generator?: RandomGenerator;
  /** Reuse keys/values across steps (default true); false recomputes the whole sequence each step. */
  useCache?: boolean;
}

/** One decoding step: the token of each row, null for rows that had already stopped. */
export interface GenerationStep {
  step: number;
  tokens: (number | null)[];
}

function configIds(v: unknown): number[] {
  const list = Array.isArray(v) ? v : [v];
  return list.filter((x): x is number => typeof x === 'number' && Number.isInteger(x));
}

/** The decoding loop as a synchronous iterator of steps (the cache is freed when it ends or is closed). */
export function* decodeSteps(
  model: PreTrainedModel,
  prompts: readonly (readonly number[])[],
  opts: GenerateOptions = {},
): Generator<GenerationStep, void, undefined> {
  if (model.task !== 'causal-lm')
    throw new Error(`[generate] ${model.architecture} is a ${model.task} model; generation needs a causal LM`);
  if (prompts.length === 0 || prompts.some((p) => p.length === 0))
    throw new Error('[generate] Every prompt needs at least one token');
  checkSamplingOptions(opts);
  const maxNew = opts.maxNewTokens ?? 20;
  if (!Number.isInteger(maxNew) || maxNew < 0)
    throw new Error(`[generate] maxNewTokens = ${maxNew} must be an integer ≥ 0`);
  const stop = new Set(opts.stopTokenIds ?? configIds(model.config['eos_token_id']));
  const pad = opts.padTokenId ?? configIds(model.config['pad_token_id'])[0] ?? [...stop][0] ?? 0;
  const g = opts.generator ?? (opts.seed !== undefined ? new RandomGenerator(opts.seed) : defaultGenerator);
  const backend = model.parameters()[0]!.backend;

  const b = prompts.length;
  const width = Math.max(...prompts.map((p) => p.length));
  // Left padding: rows of ids, mask (1 = token) and positions (cumsum(mask) − 1, 1 on padding).
  const ids = prompts.map((p) => [...new Array<number>(width - p.length).fill(pad), ...p]);
  const mask = prompts.map((p) => [
    ...new Array<number>(width - p.length).fill(0),
    ...new Array<number>(p.length).fill(1),
  ]);
  const pos = prompts.map((p) => [...new Array<number>(width - p.length).fill(1), ...p.map((_, i) => i)]);
  const seen = prompts.map((p) => [...p]);
  const done = new Array<boolean>(b).fill(false);
  const cache = opts.useCache === false ? undefined : new KVCache({ capacity: width + maxNew });
  const i32 = (rows: number[][], from: number) =>
    tensor(Int32Array.from(rows.flatMap((r) => r.slice(from))), {
      dtype: 'i32',
      shape: [b, rows[0]!.length - from],
      backend,
    });

  try {
    for (let step = 0; step < maxNew; step++) {
      const from = cache && step > 0 ? ids[0]!.length - 1 : 0; // with a cache, only the newest token
      const logits = noGrad(() =>
        scope(() => {
          const out = model.forward({
            inputIds: i32(ids, from),
            attentionMask: i32(mask, 0),
            positionIds: i32(pos, from),
            cache,
            logitsToKeep: 1,
          }); // (B, 1, V)
          return out.toArray() as Float32Array;
        }),
      );
      const v = logits.length / b;
      const tokens = ids.map((_, r) =>
        done[r] ? null : nextToken(logits.subarray(r * v, (r + 1) * v), seen[r]!, opts, g),
      );
      tokens.forEach((t, r) => {
        ids[r]!.push(t ?? pad);
        mask[r]!.push(1);
        pos[r]!.push(pos[r]![pos[r]!.length - 1]! + 1);
        if (t !== null) {
          seen[r]!.push(t);
          if (stop.has(t)) done[r] = true;
        }
      });
      yield { step, tokens };
      if (done.every(Boolean)) break;
    }
  } finally {
    cache?.dispose();
  }
}

/** The new tokens of each prompt (stop token included when produced). */
export function generate(
  model: PreTrainedModel,
  prompts: readonly (readonly number[])[],
  opts: GenerateOptions = {},
): number[][] {
  const out = prompts.map((): number[] => []);
  for (const { tokens } of decodeSteps(model, prompts, opts)) tokens.forEach((t, r) => t !== null && out[r]!.push(t));
  return out;
}

/** Streams steps as they are produced, yielding to the event loop between steps. */
export async function* streamGenerate(
  model: PreTrainedModel,
  prompts: readonly (readonly number[])[],
  opts: GenerateOptions = {},
): AsyncGenerator<GenerationStep, void, undefined> {
  for (const step of decodeSteps(model, prompts, opts)) {
    yield step;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
