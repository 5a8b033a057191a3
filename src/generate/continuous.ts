// Continuous batching: generation requests join the running batch at the next decoding step and leave it
// when they finish (a stop token, their token limit, a cancel), each row with its own sampling
// parameters and generator and its own key (an adapter, for the `around` wrapper: this layer does not
// know adapters). Each loop turn prefills the waiting requests that fit (each alone, so its prompt's
// forward is the one `generate` runs for it; at most prefillTokens prompt tokens a turn, and always one),
// then runs one decoding step over every running row, then yields to the event loop: a long request never
// holds a short one back longer than one step, a request that arrives is admitted at the next turn, and
// rows that leave are replaced at once, so the batch stays full under load. Static mode (`mode: 'static'`) admits only into an empty batch,
// up to maxRows at once, and runs it until every row has finished: batching as it was, for comparison.
//
// Rows live in a RaggedCache (ragged-cache.ts): right-aligned, each with its own positions, so a greedy
// row gives the tokens `generate` gives for that prompt alone (tested). Reads per step: the chosen ids
// (row-choice.ts).

import { noGrad } from '../autograd/graph.js';
import { tensor } from '../tensor/creation.js';
import { Generator as RandomGenerator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import type { PreTrainedModel } from '../models/pretrained.js';
import { positionRange } from '../models/positions.js';
import { vocabSizeOf } from '../models/text-inputs.js';
import { checkTokenIds } from '../io/token-ids.js';
import { RaggedCache } from './ragged-cache.js';
import { type RowSampler, chooseTokens } from './row-choice.js';
import { checkSamplingOptions } from './sampling.js';

export type RowFinish = 'stop' | 'length' | 'cancelled';

export interface RowRequest<K> {
  /** What `around` runs this row with (an adapter name, say). */
  key: K;
  ids: readonly number[];
  maxNewTokens: number;
  /** Greedy when absent or 0. */
  temperature?: number;
  topK?: number;
  topP?: number;
  /** Seed of this row's own generator (a random one when absent). */
  seed?: number;
  /** Default: the config's eos_token_id. */
  stopTokenIds?: readonly number[];
  /** Each new token, as its step finishes. */
  onToken?: (token: number) => void;
  /** Aborting ends the row at the next step, with finishReason 'cancelled'. */
  signal?: AbortSignal;
}

export interface RowResult {
  tokens: number[];
  finishReason: RowFinish;
}

/** Runs a forward with the batch's rows on their keys (rows in batch order). */
export type RowsWrapper<K> = <T>(keys: readonly K[], forward: () => T) => T;

export interface ContinuousOptions<K> {
  /** Most rows decoded at once (default 16). */
  maxRows?: number;
  /** 'continuous' (default) or 'static': admit only into an empty batch. */
  mode?: 'continuous' | 'static';
  around?: RowsWrapper<K>;
  /** Columns the cache starts with (default 64; it grows as rows need). */
  capacity?: number;
  /** Most prompt tokens prefilled in one loop turn, between two steps (default 512; one request always). */
  prefillTokens?: number;
}

export interface ContinuousStats {
  waiting: number;
  running: number;
  /** Rows of the last decoding step. */
  batchSize: number;
  steps: number;
  prefills: number;
  generatedTokens: number;
}

interface Row<K> extends RowSampler {
  req: RowRequest<K>;
  tokens: number[];
  stop: Set<number>;
  cancelled: boolean;
  settle: (r: RowResult | Error) => void;
}

function configIds(v: unknown): number[] {
  return (Array.isArray(v) ? v : [v]).filter((x): x is number => typeof x === 'number' && Number.isInteger(x));
}

export class ContinuousBatcher<K> {
  readonly #model: PreTrainedModel;
  readonly #maxRows: number;
  readonly #static: boolean;
  readonly #prefillTokens: number;
  readonly #around: RowsWrapper<K>;
  readonly #cache: RaggedCache;
  readonly #waiting: Row<K>[] = [];
  /** Running rows, in cache slot order. */
  #running: Row<K>[] = [];
  #loop: Promise<void> | null = null;
  #closed = false;
  readonly #stats = { batchSize: 0, steps: 0, prefills: 0, generatedTokens: 0 };

  constructor(model: PreTrainedModel, opts: ContinuousOptions<K> = {}) {
    if (model.task !== 'causal-lm')
      throw new Error(`[generate] ${model.architecture} is a ${model.task} model; generation needs a causal LM`);
    this.#model = model;
    this.#maxRows = opts.maxRows ?? 16;
    this.#static = (opts.mode ?? 'continuous') === 'static';
    this.#prefillTokens = opts.prefillTokens ?? 512;
    this.#around = opts.around ?? ((_keys, f) => f());
    this.#cache = new RaggedCache(model.parameters()[0]!.backend, this.#maxRows, opts.capacity);
  }

  get stats(): ContinuousStats {
    return { waiting: this.#waiting.length, running: this.#running.length, ...this.#stats };
  }

  /** Queues a request; resolves when it finishes (rejects when its prompt cannot run). */
  submit(req: RowRequest<K>): Promise<RowResult> {
    if (this.#closed) return Promise.reject(new Error('[generate] The batcher is closed'));
    try {
      this.check(req);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    if (req.maxNewTokens === 0) return Promise.resolve({ tokens: [], finishReason: 'length' });
    return new Promise<RowResult>((resolve, reject) => {
      const sample = (req.temperature ?? 0) > 0;
      const row: Row<K> = {
        req,
        tokens: [],
        stop: new Set(req.stopTokenIds ?? configIds(this.#model.config['eos_token_id'])),
        cancelled: false,
        options: sample
          ? {
              doSample: true,
              temperature: req.temperature!,
              ...(req.topK === undefined ? {} : { topK: req.topK }),
              ...(req.topP === undefined ? {} : { topP: req.topP }),
            }
          : {},
        generator: sample ? new RandomGenerator(req.seed ?? randomSeed()) : null,
        settle: (r) => (r instanceof Error ? reject(r) : resolve(r)),
      };
      if (req.signal) {
        if (req.signal.aborted) return resolve({ tokens: [], finishReason: 'cancelled' });
        req.signal.addEventListener('abort', () => this.#cancel(row), { once: true });
      }
      this.#waiting.push(row);
      this.#loop ??= this.#run().finally(() => (this.#loop = null));
    });
  }

  /** Stops admitting: waiting requests are rejected, running ones finish; then frees the cache. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const row of this.#waiting.splice(0)) row.settle(new Error('[generate] The batcher was closed'));
    await this.#loop;
    this.#cache.dispose();
  }

  /** Throws (naming the field) for a request that cannot run; submit() rejects with the same. */
  check(req: RowRequest<K>): void {
    if (req.ids.length === 0) throw new Error('[generate] The prompt needs at least one token');
    checkTokenIds(req.ids, vocabSizeOf(this.#model.config), '[generate] The prompt');
    if (!Number.isInteger(req.maxNewTokens) || req.maxNewTokens < 0)
      throw new Error(`[generate] maxNewTokens = ${req.maxNewTokens} must be an integer ≥ 0`);
    const sample = (req.temperature ?? 0) > 0;
    if (sample) checkSamplingOptions({ doSample: true, temperature: req.temperature!, topK: req.topK, topP: req.topP });
    else if (req.temperature !== undefined && req.temperature !== 0)
      throw new Error(`[generate] temperature = ${req.temperature} must be ≥ 0`);
  }

  #cancel(row: Row<K>): void {
    row.cancelled = true;
    const at = this.#waiting.indexOf(row);
    if (at >= 0) {
      this.#waiting.splice(at, 1);
      row.settle({ tokens: row.tokens, finishReason: 'cancelled' });
    }
  }

  async #run(): Promise<void> {
    while (this.#waiting.length > 0 || this.#running.length > 0) {
      // Static batches fill only when empty, and with every waiting request that fits before they start.
      const admit = this.#static
        ? this.#running.length === 0
          ? this.#maxRows
          : 0
        : this.#maxRows - this.#running.length;
      let budget = this.#static ? Infinity : this.#prefillTokens;
      for (let i = 0; i < admit && this.#waiting.length > 0; i++) {
        const n = this.#waiting[0]!.req.ids.length;
        if (i > 0 && n > budget) break;
        budget -= n;
        await this.#prefill(this.#waiting.shift()!);
      }
      this.#leave();
      if (this.#running.length > 0) await this.#step();
      this.#leave();
      // Requests that arrived, cancels, streamed tokens: the event loop runs between steps.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** The prompt alone through the model into the next free slot; its first token; it joins (unless done). */
  async #prefill(row: Row<K>): Promise<void> {
    const n = row.req.ids.length;
    let scores: Tensor | null = null;
    try {
      const cache = this.#cache.prefillCache(n);
      const backend = this.#model.parameters()[0]!.backend;
      scores = noGrad(() =>
        scope(() => {
          const ids = tensor(Int32Array.from(row.req.ids), { dtype: 'i32', shape: [1, n], backend });
          const logits = this.#around([row.req.key], () =>
            this.#model.forward({
              inputIds: ids,
              attentionMask: cache.mask,
              positionIds: ops.reshape(positionRange(backend, 0, n), [1, n]),
              cache,
              logitsToKeep: 1,
            }),
          ); // (1, 1, V)
          return ops.reshape(logits, [1, logits.shape[2]!]);
        }),
      );
      const { tokens, next } = await chooseTokens(scores, [row]);
      next.dispose();
      this.#stats.prefills++;
      if (this.#emit(row, tokens[0]!) || row.cancelled) return this.#finish(row);
      this.#cache.join(n, tokens[0]!);
      this.#running.push(row);
    } catch (e) {
      row.settle(e as Error);
    } finally {
      scores?.dispose();
    }
  }

  /** One decoding step over every running row. */
  async #step(): Promise<void> {
    const rows = this.#running;
    let scores: Tensor | null = null;
    try {
      scores = noGrad(() =>
        scope(() => {
          const inputs = this.#cache.stepInputs();
          const logits = this.#around(
            rows.map((r) => r.req.key),
            () => this.#model.forward({ ...inputs, cache: this.#cache, logitsToKeep: 1 }),
          ); // (B, 1, V)
          return ops.reshape(logits, [rows.length, logits.shape[2]!]);
        }),
      );
      const { tokens, next } = await chooseTokens(scores, rows);
      try {
        this.#cache.advance(next);
      } finally {
        next.dispose();
      }
      this.#stats.steps++;
      this.#stats.batchSize = rows.length;
      tokens.forEach((t, r) => this.#emit(rows[r]!, t)); // #leave takes the finished rows out
    } catch (e) {
      // A failed step fails every running row: the cache's state is unknown.
      for (const row of rows.splice(0)) row.settle(e as Error);
      while (this.#cache.rows > 0) this.#cache.remove(this.#cache.rows - 1);
    } finally {
      scores?.dispose();
    }
  }

  /** Records a row's new token; true when the row is done with it. */
  #emit(row: Row<K>, token: number): boolean {
    row.tokens.push(token);
    this.#stats.generatedTokens++;
    try {
      row.req.onToken?.(token);
    } catch {
      row.cancelled = true; // a consumer that throws is gone
    }
    return row.stop.has(token) || row.tokens.length >= row.req.maxNewTokens;
  }

  /** Takes finished and cancelled rows out of the batch. */
  #leave(): void {
    for (let r = this.#running.length - 1; r >= 0; r--) {
      const row = this.#running[r]!;
      if (!row.cancelled && !this.#done(row)) continue;
      this.#cache.remove(r);
      const last = this.#running.pop()!;
      if (r < this.#running.length) this.#running[r] = last;
      this.#finish(row);
    }
  }

  #done(row: Row<K>): boolean {
    const t = row.tokens;
    return t.length >= row.req.maxNewTokens || (t.length > 0 && row.stop.has(t[t.length - 1]!));
  }

  #finish(row: Row<K>): void {
    const t = row.tokens;
    const finishReason: RowFinish = this.#done(row)
      ? t.length > 0 && row.stop.has(t[t.length - 1]!)
        ? 'stop'
        : 'length'
      : 'cancelled';
    row.settle({ tokens: t, finishReason });
  }
}

function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}
