// The state of one batched generation on the device, and its steps. The left-padded ids, the attention
// mask and the position ids live in [B, prompt + new tokens] buffers uploaded once: the mask and the
// positions of every future column are known in advance (ones; one more than the last), and each step
// writes its tokens into the next column of the ids, so a step's inputs are views and nothing is uploaded
// for them. The next token is chosen on the backend (device-sampling.ts); a greedy step reads B ids, a
// sampled one its candidates. A step is a plan of reads (a generator that yields the tensors it must read
// and receives their host data), run synchronously (toArray) or asynchronously (data()).

import { noGrad } from '../autograd/graph.js';
import type { View } from '../backends/backend.js';
import { full, tensor } from '../tensor/creation.js';
import type { HostArray } from '../backends/dtype.js';
import { Generator as RandomGenerator, defaultGenerator } from '../tensor/random.js';
import { keep, scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import type { PreTrainedModel } from '../models/pretrained.js';
import { vocabSizeOf } from '../models/text-inputs.js';
import { checkTokenIds } from '../io/token-ids.js';
import { drawFromRow, drawFromSurvivors, penalize, survivors, topCandidates, topKOf } from './device-sampling.js';
import { KVCache } from './kv-cache.js';
import { type SamplingOptions, checkSamplingOptions } from './sampling.js';

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most per sequence. Default 20. */
  maxNewTokens?: number;
  /** A sequence ends after producing one of these. Default: the config's eos_token_id. */
  stopTokenIds?: readonly number[];
  /** Fills left padding. Default: pad_token_id, else the first stop token, else 0. */
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

/** Wraps the model's forward, e.g. in PeftModel.withAdapterNames for a mixed-adapter batch. */
export type ForwardWrapper = <T>(forward: () => T) => T;

/** A step: yields each tensor to read (the plan disposes it) and receives its host data. */
type StepPlan = Generator<Tensor, GenerationStep, HostArray>;

function configIds(v: unknown): number[] {
  const list = Array.isArray(v) ? v : [v];
  return list.filter((x): x is number => typeof x === 'number' && Number.isInteger(x));
}

/**
 * Checks on the host that every prompt id, and the pad id when it pads a prompt, is one the model embeds;
 * names the value (a device kernel would report it late).
 */
function checkPromptIds(prompts: readonly (readonly number[])[], pad: number, vocab: number | undefined): void {
  prompts.forEach((p, r) => checkTokenIds(p, vocab, `[generate] Prompt ${r}`));
  if (prompts.some((p) => p.length < prompts[0]!.length || p.length > prompts[0]!.length))
    checkTokenIds([pad], vocab, '[generate] padTokenId (left padding of the shorter prompts)');
}

export class Decoder {
  readonly rows: number;
  readonly #model: PreTrainedModel;
  readonly #opts: GenerateOptions;
  readonly #maxNew: number;
  readonly #stop: Set<number>;
  readonly #pad: number;
  readonly #g: RandomGenerator;
  readonly #cache: KVCache | undefined;
  readonly #ids: Tensor; // i32 (B, capacity): left-padded prompts, then the tokens chosen so far
  readonly #mask: Tensor; // bool (B, capacity)
  readonly #positions: Tensor; // i32 (B, capacity)
  readonly #prompts: readonly (readonly number[])[];
  #seen: Tensor | null = null; // f32 (B, V): counts of each row's tokens, for the repetition penalty
  #length: number;
  #step = 0;
  readonly #done: boolean[];
  /** Each row's newest token: what a finished row is fed (its input no longer matters, but must embed). */
  readonly #last: number[];

  constructor(model: PreTrainedModel, prompts: readonly (readonly number[])[], opts: GenerateOptions = {}) {
    if (model.task !== 'causal-lm')
      throw new Error(`[generate] ${model.architecture} is a ${model.task} model; generation needs a causal LM`);
    if (prompts.length === 0 || prompts.some((p) => p.length === 0))
      throw new Error('[generate] Every prompt needs at least one token');
    checkSamplingOptions(opts);
    const maxNew = opts.maxNewTokens ?? 20;
    if (!Number.isInteger(maxNew) || maxNew < 0)
      throw new Error(`[generate] maxNewTokens = ${maxNew} must be an integer ≥ 0`);
    this.#model = model;
    this.#opts = opts;
    this.#maxNew = maxNew;
    this.#stop = new Set(opts.stopTokenIds ?? configIds(model.config['eos_token_id']));
    this.#pad = opts.padTokenId ?? configIds(model.config['pad_token_id'])[0] ?? [...this.#stop][0] ?? 0;
    checkPromptIds(prompts, this.#pad, vocabSizeOf(model.config));
    this.#g = opts.generator ?? (opts.seed !== undefined ? new RandomGenerator(opts.seed) : defaultGenerator);
    this.#prompts = prompts;
    this.rows = prompts.length;
    this.#done = new Array<boolean>(this.rows).fill(false);
    this.#last = prompts.map((p) => p[p.length - 1]!);

    const width = Math.max(...prompts.map((p) => p.length));
    const capacity = width + maxNew;
    this.#length = width;
    this.#cache = opts.useCache === false ? undefined : new KVCache({ capacity });
    // Left padding: ids (pad), mask (0) and positions (1) on padding; positions count the real tokens
    // from 0, and every generated column is a real token one position further.
    const ids = new Int32Array(this.rows * capacity).fill(this.#pad);
    const mask = new Uint8Array(this.rows * capacity).fill(1);
    const positions = new Int32Array(this.rows * capacity);
    prompts.forEach((p, r) => {
      const lead = width - p.length;
      const row = r * capacity;
      ids.set(p, row + lead);
      mask.fill(0, row, row + lead);
      positions.fill(1, row, row + lead);
      for (let j = lead; j < capacity; j++) positions[row + j] = j - lead;
    });
    const backend = model.parameters()[0]!.backend;
    const shape = [this.rows, capacity];
    this.#ids = keep(tensor(ids, { dtype: 'i32', shape, backend }));
    this.#mask = keep(tensor(mask, { dtype: 'bool', shape, backend }));
    this.#positions = keep(tensor(positions, { dtype: 'i32', shape, backend }));
  }

  /** Steps taken so far. */
  get step(): number {
    return this.#step;
  }

  /** True once every row has stopped or maxNewTokens steps were taken. */
  get finished(): boolean {
    return this.#step >= this.#maxNew || this.#done.every(Boolean);
  }

  /** One step, reading with toArray (waits for the device). */
  stepSync(around?: ForwardWrapper): GenerationStep {
    const plan = this.#plan(around);
    let r = plan.next();
    while (!r.done) {
      let host: HostArray;
      try {
        host = r.value.toArray();
      } catch (e) {
        plan.throw(e); // the plan frees what it holds, and rethrows
        throw e;
      }
      r = plan.next(host);
    }
    return r.value;
  }

  /** One step, reading with data(): the event loop runs while the device computes. */
  async stepAsync(around?: ForwardWrapper): Promise<GenerationStep> {
    const plan = this.#plan(around);
    let r = plan.next();
    while (!r.done) {
      let host: HostArray;
      try {
        host = await r.value.data();
      } catch (e) {
        plan.throw(e);
        throw e;
      }
      r = plan.next(host);
    }
    return r.value;
  }

  /** Frees the device buffers and the KV cache. */
  dispose(): void {
    this.#cache?.dispose();
    for (const t of [this.#ids, this.#mask, this.#positions, this.#seen]) t?.dispose();
    this.#seen = null;
  }

  *#plan(around: ForwardWrapper = (f) => f()): StepPlan {
    if (this.finished) throw new Error('[generate] The generation has finished');
    const o = this.#opts;
    const penalty = o.repetitionPenalty ?? 1;
    const len = this.#length;
    const from = this.#cache && this.#step > 0 ? len - 1 : 0; // with a cache, only the newest token
    const scores = noGrad(() =>
      scope(() => {
        const logits = around(() =>
          this.#model.forward({
            inputIds: ops.slice(this.#ids, 1, from, len),
            attentionMask: ops.slice(this.#mask, 1, 0, len),
            positionIds: ops.slice(this.#positions, 1, from, len),
            cache: this.#cache,
            logitsToKeep: 1,
          }),
        ); // (B, 1, V)
        const s = ops.reshape(logits, [this.rows, logits.shape[2]!]); // (B, V)
        return penalty === 1 ? s : penalize(s, this.#seenCounts(s.shape[1]!), penalty);
      }),
    );
    let chosen: (number | null)[];
    try {
      chosen = o.doSample ? yield* this.#sample(scores) : yield* this.#greedy(scores);
    } finally {
      scores.dispose();
    }
    const tokens = chosen.map((t, r) => (this.#done[r] ? null : t));
    tokens.forEach((t, r) => {
      if (t === null) return;
      this.#last[r] = t;
      if (this.#stop.has(t)) this.#done[r] = true;
    });
    this.#length++;
    return { step: this.#step++, tokens };
  }

  // The argmax on the device goes straight into the ids (no upload); B ids are read.
  *#greedy(scores: Tensor): Generator<Tensor, number[], HostArray> {
    const next = noGrad(() => ops.argmax(scores)); // (B) i32
    try {
      this.#append(next);
      const host = yield next;
      return Array.from(host as Int32Array);
    } finally {
      next.dispose();
    }
  }

  // Candidates are read (one read); only when a row's k-th candidate ties the next one, or top-k is
  // off, are the whole rows read. The chosen ids are uploaded (B ints) into the ids.
  *#sample(scores: Tensor): Generator<Tensor, number[], HostArray> {
    const o = this.#opts;
    const v = scores.shape[1]!;
    const k = topKOf(o, v);
    const read = Math.min(v, k + 1);
    let kept: ({ index: number; score: number }[] | null)[] = this.#done.map(() => null);
    if (k > 0) {
      const packed = noGrad(() => topCandidates(scores, read));
      let host: HostArray;
      try {
        host = yield packed;
      } finally {
        packed.dispose();
      }
      kept = this.#done.map((done, r) => (done ? null : survivors(host, r, read, k, v)));
    }
    const needRows = this.#done.some((done, r) => !done && kept[r] === null);
    const rows = needRows ? ((yield scores) as Float32Array) : null;
    // One uniform per live row, in row order, as on the host.
    const tokens = this.#done.map((done, r) => {
      if (done) return this.#last[r]!;
      const mine = kept[r];
      return mine ? drawFromSurvivors(mine, o, this.#g) : drawFromRow(rows!.subarray(r * v, (r + 1) * v), o, this.#g);
    });
    const next = tensor(Int32Array.from(tokens), { dtype: 'i32', backend: scores.backend });
    try {
      this.#append(next);
    } finally {
      next.dispose();
    }
    return tokens;
  }

  /** Writes ids [B] into column #length of the ids (and counts them as seen for the penalty). */
  #append(next: Tensor): void {
    const backend = next.backend;
    const cols = this.#ids.shape[1]!;
    const ids = this.#ids.view('generate');
    const col: View = { ...ids, offset: ids.offset + this.#length, shape: [this.rows], strides: [cols] };
    backend.copy(col, next.view('generate'));
    if (this.#seen) {
      scope(() => {
        const ones = full([this.rows, 1], 1, { backend });
        const index: View = { ...next.view('generate'), shape: [this.rows, 1], strides: [1, 1] };
        backend.scatterAdd(this.#seen!.view('generate'), index, ones.view('generate'), 1);
      });
    }
  }

  /** The seen counts [B, V], made on the first penalized step from the prompts (one upload). */
  #seenCounts(v: number): Tensor {
    if (!this.#seen) {
      const counts = new Float32Array(this.rows * v);
      this.#prompts.forEach((p, r) => p.forEach((id) => id < v && (counts[r * v + id] = 1)));
      this.#seen = keep(tensor(counts, { shape: [this.rows, v], backend: this.#ids.backend }));
    }
    return this.#seen;
  }
}
