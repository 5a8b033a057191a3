// The Engine in-process: one base model, its adapters (adapters.ts: from the AdapterSource, by
// name@version, LRU), generation through continuous batching (generate/continuous.ts: a request joins the
// running batch at the next step, each row on its own adapter and sampling parameters), classification
// and embeddings in batches of the requests that arrive within batchWindowMs (batches.ts). It runs on
// the thread that calls it; worker.ts runs it in a worker thread and client.ts talks to it from the main
// thread with the same interface.

import { BASE_ADAPTER } from '../../adapters/mixed.js';
import type { Backend } from '../../backends/backend.js';
import { ContinuousBatcher, type RowRequest } from '../../generate/continuous.js';
import type { PreTrainedModel } from '../../models/pretrained.js';
import type { ParameterDType } from '../../models/storage.js';
import { vocabSizeOf } from '../../models/text-inputs.js';
import { checkTokenIds } from '../../io/token-ids.js';
import { type Pooling, poolingOf } from '../pooling.js';
import { AdapterPool } from './adapters.js';
import { type TextOrImage, batchKey, classifyBatch, embedBatch } from './batches.js';
import { loadEngineModel } from './model.js';
import {
  type AdapterRef,
  type AdapterSource,
  type CallOptions,
  type ClassifyRequest,
  type ClassifyResult,
  type EmbedRequest,
  type EmbedResult,
  type Engine,
  EngineError,
  type EngineStats,
  type GenerateRequest,
  type GenerateResult,
  abortError,
} from './types.js';

/** What an engine is made with; everything but `source` and `backend` can cross to a worker. */
export interface EngineOptions {
  /** The base model directory. */
  model: string;
  /** An adapter whose classification head decides the base's class (a classifier on a causal-LM base). */
  headFrom?: AdapterRef | null;
  dtype?: ParameterDType;
  /** Most rows of a generation batch, most requests of a classification or embedding batch (default 16). */
  maxBatch?: number;
  /** Most adapters held in memory at once (default 64). */
  maxLoaded?: number;
  /** Most requests waiting (not yet running); beyond, requests fail with 503 (default 1024). */
  maxQueued?: number;
  /** How long a classification or embedding request waits for others to share its batch, in ms (default 2). */
  batchWindowMs?: number;
  /** 'continuous' (default) or 'static' generation batches (for comparison). */
  batching?: 'continuous' | 'static';
  /** Embedding pooling (default: the model directory's 1_Pooling, else mean). */
  pooling?: Pooling;
  log?: (line: string) => void;
}

interface Job {
  kind: 'classify' | 'embed';
  key: string;
  input: TextOrImage;
  adapter: string;
  signal: AbortSignal | undefined;
  resolve: (v: ClassifyResult | EmbedResult) => void;
  reject: (e: unknown) => void;
}

export class LocalEngine implements Engine {
  readonly info: Engine['info'];
  readonly model: PreTrainedModel;
  readonly #padId: number;
  readonly #maxLength: number | undefined;
  readonly #opts: {
    maxBatch: number;
    maxLoaded: number;
    maxQueued: number;
    batchWindowMs: number;
    batching: 'continuous' | 'static';
    pooling: Pooling;
  };
  readonly #pool: AdapterPool;
  readonly #batcher: ContinuousBatcher<string> | null;
  #jobs: Job[] = [];
  #timer: NodeJS.Timeout | null = null;
  #draining: Promise<void> | null = null;
  #waiting = 0;
  #closed = false;
  readonly #counts = { requests: 0, batches: 0 };

  /** Loads the base (and the head adapter, when given, through the source). */
  static async create(opts: EngineOptions & { source: AdapterSource; backend?: Backend }): Promise<LocalEngine> {
    const head = opts.headFrom ? await opts.source(opts.headFrom) : null;
    const loaded = loadEngineModel(opts.model, head, {
      ...(opts.dtype ? { dtype: opts.dtype } : {}),
      ...(opts.backend ? { backend: opts.backend } : {}),
    });
    return new LocalEngine(loaded.model, opts, loaded.padId, loaded.maxLength);
  }

  constructor(
    model: PreTrainedModel,
    opts: EngineOptions & { source: AdapterSource },
    padId = 0,
    maxLength: number | undefined = undefined,
  ) {
    this.#opts = {
      maxBatch: opts.maxBatch ?? 16,
      maxLoaded: opts.maxLoaded ?? 64,
      maxQueued: opts.maxQueued ?? 1024,
      batchWindowMs: opts.batchWindowMs ?? 2,
      batching: opts.batching ?? 'continuous',
      pooling: opts.pooling ?? poolingOf(opts.model),
    };
    for (const k of ['maxBatch', 'maxLoaded', 'maxQueued'] as const) {
      const v = this.#opts[k];
      if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${v}`);
    }
    this.model = model;
    this.#padId = padId;
    this.#maxLength = maxLength;
    this.info = {
      task: model.task,
      architecture: model.architecture,
      modelType: model.modelType,
      config: model.config,
    };
    this.#pool = new AdapterPool(model, opts.source, {
      maxLoaded: this.#opts.maxLoaded,
      ...(opts.log ? { log: opts.log } : {}),
    });
    this.#batcher =
      model.task === 'causal-lm'
        ? new ContinuousBatcher<string>(model, {
            maxRows: this.#opts.maxBatch,
            mode: this.#opts.batching,
            around: (names, fn) => this.#pool.around(names, fn),
          })
        : null;
  }

  async generate(
    req: GenerateRequest,
    opts: CallOptions & { onToken?: (token: number) => void } = {},
  ): Promise<GenerateResult> {
    const batcher = this.#batcher;
    if (!batcher)
      throw new EngineError(400, `the model is a ${this.info.architecture} (${this.info.task}): it does not generate`);
    const row: RowRequest<string> = {
      key: BASE_ADAPTER,
      ids: req.ids,
      maxNewTokens: req.maxNewTokens,
      ...pick(req, ['temperature', 'topP', 'topK', 'seed', 'stopTokenIds']),
      ...(opts.onToken ? { onToken: opts.onToken } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    };
    try {
      batcher.check(row);
    } catch (e) {
      throw new EngineError(400, (e as Error).message);
    }
    // Learned position embeddings (GPT-2) end at n_positions; rotary ones have no table to run off.
    const positions = this.info.modelType === 'gpt2' ? Number(this.info.config['n_positions']) : Infinity;
    if (req.ids.length + req.maxNewTokens > positions)
      throw new EngineError(
        400,
        `the prompt's ${req.ids.length} tokens and max_new_tokens ${req.maxNewTokens} exceed the model's ${positions} positions`,
      );
    this.#admit(opts.signal);
    const adapter = await this.#acquire(req.adapter);
    try {
      if (opts.signal?.aborted) throw abortError();
      const r = await batcher.submit({ ...row, key: adapter });
      if (r.finishReason === 'cancelled') throw abortError();
      return { tokens: r.tokens, finishReason: r.finishReason, promptTokens: req.ids.length };
    } catch (e) {
      throw e instanceof EngineError ? e : new EngineError(500, (e as Error).message);
    } finally {
      this.#pool.release(adapter);
    }
  }

  classify(req: ClassifyRequest, opts: CallOptions = {}): Promise<ClassifyResult> {
    if (this.info.task === 'causal-lm')
      return Promise.reject(
        new EngineError(400, `the model is a ${this.info.architecture} (causal LM): it does not classify`),
      );
    return this.#queue('classify', req, opts) as Promise<ClassifyResult>;
  }

  embed(req: EmbedRequest, opts: CallOptions = {}): Promise<EmbedResult> {
    if (this.info.task === 'image-classification')
      return Promise.reject(new EngineError(400, `the model is an image classifier (${this.info.architecture})`));
    return this.#queue('embed', req, opts) as Promise<EmbedResult>;
  }

  evict(name: string, keepVersion?: number): void {
    this.#pool.evict(name, keepVersion);
  }

  stats(): EngineStats {
    const g = this.#batcher?.stats;
    return {
      waiting: this.#waiting + (g?.waiting ?? 0) + this.#jobs.length,
      running: g?.running ?? 0,
      batchSize: g?.batchSize ?? 0,
      loaded: this.#pool.loaded(),
      requests: this.#counts.requests,
      batches: this.#counts.batches,
      steps: g?.steps ?? 0,
      generatedTokens: g?.generatedTokens ?? 0,
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    for (const j of this.#jobs.splice(0)) {
      this.#pool.release(j.adapter);
      j.reject(new EngineError(503, 'the engine was closed'));
    }
    await this.#draining;
    await this.#batcher?.close();
    this.model.dispose();
  }

  /** Refuses a request when closed, cancelled or beyond maxQueued waiting ones. */
  #admit(signal: AbortSignal | undefined): void {
    if (this.#closed) throw new EngineError(503, 'the engine is closed');
    if (signal?.aborted) throw abortError();
    const waiting = this.stats().waiting;
    if (waiting >= this.#opts.maxQueued)
      throw new EngineError(503, `the engine is busy (${waiting} requests waiting); retry later`);
    this.#counts.requests++;
  }

  /** The adapter's name for rows, loaded and held (counted as waiting meanwhile); release() it. */
  async #acquire(ref: AdapterRef): Promise<string> {
    this.#waiting++;
    try {
      return await this.#pool.acquire(ref);
    } finally {
      this.#waiting--;
    }
  }

  async #queue(kind: 'classify' | 'embed', req: ClassifyRequest | EmbedRequest, opts: CallOptions) {
    const input: TextOrImage = {
      ids: req.ids,
      typeIds: req.typeIds,
      ...('pixels' in req && req.pixels ? { pixels: req.pixels, size: req.size! } : {}),
    };
    if (!input.pixels) {
      if (input.ids.length === 0) throw new EngineError(400, 'the input has no tokens');
      try {
        checkTokenIds(input.ids, vocabSizeOf(this.info.config), 'the input');
      } catch (e) {
        throw new EngineError(400, (e as Error).message);
      }
      // Longer inputs are cut to the model's positions, as vera train and vera eval cut them.
      const limit = this.#maxLength ?? Infinity;
      input.ids = input.ids.slice(0, limit);
      input.typeIds = input.typeIds.slice(0, limit);
    } else if (kind === 'embed') throw new EngineError(400, 'embeddings take text');
    this.#admit(opts.signal);
    const adapter = await this.#acquire(req.adapter);
    if (opts.signal?.aborted || this.#closed) {
      this.#pool.release(adapter);
      throw this.#closed ? new EngineError(503, 'the engine was closed') : abortError();
    }
    return new Promise<ClassifyResult | EmbedResult>((resolve, reject) => {
      this.#jobs.push({
        kind,
        key: `${kind} ${batchKey(input)}`,
        input,
        adapter,
        signal: opts.signal,
        resolve,
        reject,
      });
      this.#timer ??= setTimeout(() => void this.#drain(), this.#opts.batchWindowMs);
    });
  }

  /** Runs the queued jobs batch by batch: the first and those after it with the same kind and input shape. */
  async #drain(): Promise<void> {
    this.#timer = null;
    if (this.#draining) return;
    const run = async () => {
      while (this.#jobs.length > 0) {
        const key = this.#jobs[0]!.key;
        const batch: Job[] = [];
        this.#jobs = this.#jobs.filter((j) => {
          if (batch.length < this.#opts.maxBatch && j.key === key) return !batch.push(j);
          return true;
        });
        const live = batch.filter((j) => {
          if (!j.signal?.aborted) return true;
          this.#pool.release(j.adapter);
          j.reject(abortError());
          return false;
        });
        if (live.length > 0) await this.#runBatch(live);
        // The generation loop and new requests get their turn between batches.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    };
    this.#draining = run().finally(() => (this.#draining = null));
    await this.#draining;
  }

  async #runBatch(batch: Job[]): Promise<void> {
    this.#counts.batches++;
    const rows = batch.map((j) => ({ ...j.input, adapter: j.adapter }));
    const around = <T>(names: readonly string[], fn: () => T) => this.#pool.around(names, fn);
    try {
      if (batch[0]!.kind === 'classify') {
        const logits = await classifyBatch(this.model, rows, this.#padId, around);
        batch.forEach((j, i) => j.resolve({ logits: logits[i]! }));
      } else {
        const vectors = await embedBatch(this.model, rows, this.#padId, this.#opts.pooling, around);
        batch.forEach((j, i) => j.resolve({ embedding: vectors[i]! }));
      }
    } catch (e) {
      const err = e instanceof EngineError ? e : new EngineError(500, (e as Error).message);
      for (const j of batch) j.reject(err);
    } finally {
      for (const j of batch) this.#pool.release(j.adapter);
    }
  }
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
