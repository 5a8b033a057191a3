// The in-process Engine (engine/types.ts): the model on the main thread, with static batching. Requests
// that arrive within batchWindowMs run as one mixed-adapter batch (PeftModel.withAdapterNames: with VeRA,
// whose adapters share A and B, a batch of many adapters costs what a batch of one costs); a batch runs
// to its end before the next starts, and a sampled generation runs in a batch of its own (its seed alone
// decides it). Adapters load on first use, as name@version (a new version loads beside the old one, so
// nothing running changes under it), and beyond maxLoaded the least recently used are unloaded.
//
// This is the engine `vera serve` had before the engine moved behind the contract; the worker engine
// with continuous batching replaces it as the default, and the server takes either.

import { BASE_ADAPTER } from '../adapters/mixed.js';
import { PeftModel } from '../adapters/peft-model.js';
import { noGrad } from '../autograd/graph.js';
import { Decoder } from '../generate/decoder.js';
import { BertModel } from '../models/bert/model.js';
import type { ModelInputs, PreTrainedModel } from '../models/pretrained.js';
import * as ops from '../ops/index.js';
import { tensor } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type {
  AdapterRef,
  AdapterSource,
  CallOptions,
  ClassifyRequest,
  ClassifyResult,
  EmbedRequest,
  EmbedResult,
  Engine,
  EngineStats,
  GenerateRequest,
  GenerateResult,
} from './engine/types.js';
import { filesToDir } from './catalog.js';
import { type Pooling, poolingWeights, unitLength } from './pooling.js';

export interface LocalEngineOptions {
  /** The base model, in the class its adapters need (adapters/load.ts: loadBaseFor), in eval mode. */
  model: PreTrainedModel;
  /** Where adapter files come from. */
  source: AdapterSource;
  /** Fills padding (right padding for classification, left for generation). */
  padTokenId: number;
  /** Most requests in one batch (default 16). */
  maxBatch?: number;
  /** How long a request waits for others to share its batch, in ms (default 2). */
  batchWindowMs?: number;
  /** Most adapters held in memory at once (default 64). */
  maxLoaded?: number;
  /** Most requests waiting for a batch; beyond, requests are refused with status 503 (default 1024). */
  maxQueued?: number;
  /** Embedding pooling (default mean). */
  pooling?: Pooling;
  log?: (line: string) => void;
}

/** An engine error with the HTTP status the server answers it with. */
export class EngineError extends Error {
  constructor(
    readonly status: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function abortError(): Error {
  return new DOMException('the request was cancelled', 'AbortError');
}

interface Base {
  ref: AdapterRef;
  /** Adapter name in the PeftModel: name@version, or BASE_ADAPTER. */
  slot: string;
  /** Jobs with the same key can share a batch. */
  key: string;
  signal: AbortSignal | undefined;
  resolve: (v: never) => void;
  reject: (e: unknown) => void;
}
type Job =
  | (Base & { kind: 'classify'; req: ClassifyRequest })
  | (Base & { kind: 'embed'; req: EmbedRequest })
  | (Base & { kind: 'generate'; req: GenerateRequest; onToken?: (token: number) => void });

const slotOf = (ref: AdapterRef) => (ref.name === BASE_ADAPTER ? BASE_ADAPTER : `${ref.name}@${ref.version}`);
let unique = 0;

export class LocalEngine implements Engine {
  readonly info: Engine['info'];
  readonly model: PreTrainedModel;
  #peft: PeftModel<PreTrainedModel> | null = null;
  /** Loaded adapters (slots), least recently used first. */
  #loaded: string[] = [];
  #queue: Job[] = [];
  /** Slots of the batch running now. */
  #running: Job[] = [];
  #timer: NodeJS.Timeout | null = null;
  #draining: Promise<void> | null = null;
  #closed = false;
  readonly #opts: Required<Omit<LocalEngineOptions, 'log'>> & Pick<LocalEngineOptions, 'log'>;
  #stats = { requests: 0, steps: 0, generatedTokens: 0, batches: 0, batchSize: 0 };

  constructor(opts: LocalEngineOptions) {
    this.#opts = { maxBatch: 16, batchWindowMs: 2, maxLoaded: 64, maxQueued: 1024, pooling: 'mean', ...opts };
    const { maxBatch, maxLoaded, maxQueued } = this.#opts;
    for (const [k, v] of Object.entries({ maxBatch, maxLoaded, maxQueued }))
      if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${v}`);
    this.model = opts.model;
    const m = opts.model;
    this.info = { task: m.task, architecture: m.architecture, modelType: m.modelType, config: m.config };
  }

  generate(
    req: GenerateRequest,
    opts: CallOptions & { onToken?: (token: number) => void } = {},
  ): Promise<GenerateResult> {
    if (this.model.task !== 'causal-lm')
      return Promise.reject(new EngineError(400, `${this.model.architecture} is not a causal LM`));
    const doSample = (req.temperature ?? 0) > 0;
    const stops = req.stopTokenIds?.join(',') ?? '';
    // A sampled request shares its batch with none: the Decoder draws every row from one stream.
    const key = doSample ? `sampled ${unique++}` : `greedy ${stops}`;
    return this.#enqueue({ kind: 'generate', req, ...(opts.onToken ? { onToken: opts.onToken } : {}) }, key, opts);
  }

  classify(req: ClassifyRequest, opts: CallOptions = {}): Promise<ClassifyResult> {
    if (this.model.task === 'causal-lm')
      return Promise.reject(new EngineError(400, `${this.model.architecture} is a causal LM, not a classifier`));
    // The batch keeps one image size per batch.
    const key = req.size ? `classify-image ${req.size.join('x')}` : 'classify';
    return this.#enqueue({ kind: 'classify', req }, key, opts);
  }

  embed(req: EmbedRequest, opts: CallOptions = {}): Promise<EmbedResult> {
    if (this.#encoder() === null)
      return Promise.reject(
        new EngineError(
          400,
          `embeddings need an encoder model (BERT, RoBERTa); this is a ${this.model.architecture} (${this.model.task})`,
        ),
      );
    return this.#enqueue({ kind: 'embed', req }, 'embed', opts);
  }

  evict(name: string, keepVersion?: number): void {
    for (const slot of [...this.#loaded]) {
      const at = slot.lastIndexOf('@');
      if (slot.slice(0, at) !== name) continue;
      if (keepVersion !== undefined && Number(slot.slice(at + 1)) >= keepVersion) continue;
      if (this.#running.some((j) => j.slot === slot) || this.#queue.some((j) => j.slot === slot)) continue;
      this.#unload(slot);
    }
  }

  stats(): EngineStats & { batches: number } {
    return {
      waiting: this.#queue.length,
      running: this.#running.length,
      batchSize: this.#stats.batchSize,
      loaded: [...this.#loaded],
      requests: this.#stats.requests,
      steps: this.#stats.steps,
      generatedTokens: this.#stats.generatedTokens,
      batches: this.#stats.batches,
    };
  }

  /** Adapters (name@version) of the batch running now, and of the requests waiting. */
  adapterSlots(): { running: string[]; waiting: string[] } {
    const names = (jobs: Job[]) => [...new Set(jobs.map((j) => j.slot))];
    return { running: names(this.#running), waiting: names(this.#queue) };
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    for (const j of this.#queue.splice(0)) j.reject(new EngineError(503, 'the server is shutting down'));
    await this.#draining;
  }

  #encoder(): BertModel | null {
    const m = this.model as unknown as Record<string, unknown>;
    for (const k of ['bert', 'roberta']) if (m[k] instanceof BertModel) return m[k];
    return null;
  }

  #enqueue<T>(job: Omit<Job, keyof Base> & Record<string, unknown>, key: string, opts: CallOptions): Promise<T> {
    if (this.#closed) return Promise.reject(new EngineError(503, 'the server is shutting down'));
    // Backpressure: past maxQueued waiting requests, new ones are turned away rather than piling up.
    if (this.#queue.length >= this.#opts.maxQueued)
      return Promise.reject(
        new EngineError(503, `the server is busy (${this.#queue.length} requests waiting); retry later`),
      );
    if (opts.signal?.aborted) return Promise.reject(abortError());
    const ref = (job as { req: { adapter: AdapterRef } }).req.adapter;
    this.#stats.requests++;
    return new Promise<T>((resolve, reject) => {
      const full = {
        ...job,
        ref,
        slot: slotOf(ref),
        key,
        signal: opts.signal,
        resolve: resolve as (v: never) => void,
        reject,
      } as Job;
      // Cancelled while waiting: it leaves the queue now (while running: at the batch's next step).
      opts.signal?.addEventListener(
        'abort',
        () => {
          const at = this.#queue.indexOf(full);
          if (at >= 0) {
            this.#queue.splice(at, 1);
            reject(abortError());
          }
        },
        { once: true },
      );
      this.#queue.push(full);
      if (this.#timer === null && this.#draining === null)
        this.#timer = setTimeout(() => this.#startDrain(), this.#opts.batchWindowMs);
    });
  }

  #startDrain(): void {
    this.#timer = null;
    if (this.#draining) return;
    this.#draining = this.#drainQueue().finally(() => {
      this.#draining = null;
      // Requests that arrived during the last batch wait a window for company, as new ones do.
      if (this.#queue.length > 0 && !this.#closed)
        this.#timer = setTimeout(() => this.#startDrain(), this.#opts.batchWindowMs);
    });
  }

  /** Runs the queue batch by batch: the first job and the jobs after it that can share its batch. */
  async #drainQueue(): Promise<void> {
    while (this.#queue.length > 0 && !this.#closed) {
      const key = this.#queue[0]!.key;
      const batch: Job[] = [];
      this.#queue = this.#queue.filter((j) => {
        if (batch.length < this.#opts.maxBatch && j.key === key) {
          batch.push(j);
          return false;
        }
        return true;
      });
      await this.#runBatch(batch);
    }
  }

  async #runBatch(batch: Job[]): Promise<void> {
    this.#stats.batches++;
    // An adapter that cannot be loaded fails its own requests only.
    const ok: Job[] = [];
    for (const j of batch) {
      try {
        await this.#ensureLoaded(j, batch);
        ok.push(j);
      } catch (e) {
        j.reject(
          typeof (e as { status?: unknown }).status === 'number'
            ? e
            : new EngineError(422, `adapter "${j.ref.name}": ${(e as Error).message}`, { cause: e }),
        );
      }
    }
    if (ok.length === 0) return;
    this.#running = ok;
    this.#stats.batchSize = ok.length;
    try {
      const first = ok[0]!;
      if (first.kind === 'generate') await this.#generateBatch(ok as Extract<Job, { kind: 'generate' }>[]);
      else {
        const results =
          first.kind === 'classify'
            ? await this.#classifyBatch(ok as Extract<Job, { kind: 'classify' }>[])
            : await this.#embedBatch(ok as Extract<Job, { kind: 'embed' }>[]);
        ok.forEach((j, i) => (j.signal?.aborted ? j.reject(abortError()) : j.resolve(results[i] as never)));
      }
    } catch (e) {
      for (const j of ok) j.reject(e);
    } finally {
      this.#running = [];
      this.#stats.batchSize = 0;
    }
  }

  async #ensureLoaded(job: Job, batch: readonly Job[]): Promise<void> {
    const slot = job.slot;
    if (slot === BASE_ADAPTER) return;
    const at = this.#loaded.indexOf(slot);
    if (at >= 0) {
      this.#loaded.splice(at, 1);
      this.#loaded.push(slot);
      return;
    }
    // PeftModel loads from a directory: the files go to a private temporary one, removed right after.
    const { dir, remove } = filesToDir(await this.#opts.source(job.ref));
    try {
      if (this.#peft === null) this.#peft = PeftModel.fromPretrained(this.model, dir, { adapterName: slot });
      else this.#peft.loadAdapter(dir, slot);
    } catch (e) {
      // The loader names files by their (temporary) path: name them by the file alone.
      if (e instanceof Error) e.message = e.message.split(`${dir}/`).join('').split(dir).join('the adapter folder');
      throw e;
    } finally {
      remove();
    }
    this.#loaded.push(slot);
    this.#opts.log?.(`loaded adapter ${slot}`);
    // Over the limit: unload the least recently used adapters that this batch does not need.
    const needed = new Set(batch.map((j) => j.slot));
    for (const old of [...this.#loaded]) {
      if (this.#loaded.length <= this.#opts.maxLoaded) break;
      if (!needed.has(old)) this.#unload(old);
    }
  }

  #unload(slot: string): void {
    this.#peft?.deleteAdapter(slot);
    this.#loaded.splice(this.#loaded.indexOf(slot), 1);
    this.#opts.log?.(`unloaded adapter ${slot}`);
  }

  /** Runs fn with each row on its job's adapter (the base alone when no adapter is loaded yet). */
  #withAdapters<T>(jobs: readonly Job[], fn: () => T): T {
    if (this.#peft === null) return fn();
    return this.#peft.withAdapterNames(
      jobs.map((j) => j.slot),
      fn,
    );
  }

  async #read(out: Tensor): Promise<Float32Array> {
    // The forward ran in a scope; its result, read asynchronously, lets the event loop run meanwhile.
    const read = out.data();
    out.dispose();
    return (await read) as Float32Array;
  }

  async #classifyBatch(jobs: Extract<Job, { kind: 'classify' }>[]): Promise<ClassifyResult[]> {
    const out = noGrad(() =>
      scope(() => this.#withAdapters(jobs, () => this.model.forward(this.#textInputs(jobs.map((j) => j.req))))),
    );
    const logits = await this.#read(out);
    const n = logits.length / jobs.length;
    return jobs.map((_, i) => ({ logits: Array.from(logits.subarray(i * n, (i + 1) * n)) }));
  }

  async #embedBatch(jobs: Extract<Job, { kind: 'embed' }>[]): Promise<EmbedResult[]> {
    const encoder = this.#encoder()!;
    const lengths = jobs.map((j) => j.req.ids.length);
    const out = noGrad(() =>
      scope(() => {
        const inputs = this.#textInputs(jobs.map((j) => j.req));
        const hidden = this.#withAdapters(jobs, () => encoder.forward(inputs)); // (B, T, C)
        const [b, t] = [hidden.shape[0]!, hidden.shape[1]!];
        // Pooling as a weighted sum over positions: one batched GEMM (B, 1, T)·(B, T, C), on the backend.
        const w = tensor(poolingWeights(lengths, t, this.#opts.pooling), { shape: [b, 1, t], backend: hidden.backend });
        return ops.reshape(ops.matmul(w, hidden), [b, hidden.shape[2]!]);
      }),
    );
    const pooled = await this.#read(out);
    const c = pooled.length / jobs.length;
    return jobs.map((_, i) => ({ embedding: unitLength(pooled.slice(i * c, (i + 1) * c)) }));
  }

  /** The batch's model inputs: stacked pixel values, or right-padded ids with their mask (and BERT's types). */
  #textInputs(reqs: readonly (ClassifyRequest | EmbedRequest)[]): ModelInputs {
    const backend = this.model.parameters()[0]!.backend;
    const first = reqs[0]! as ClassifyRequest;
    if (first.pixels && first.size) {
      const one = first.pixels.length;
      const all = new Float32Array(one * reqs.length);
      reqs.forEach((r, i) => all.set((r as ClassifyRequest).pixels!, i * one));
      return { pixelValues: tensor(all, { shape: [reqs.length, 3, ...first.size], backend }) };
    }
    const width = Math.max(...reqs.map((r) => r.ids.length));
    const padded = (pick: (r: ClassifyRequest | EmbedRequest) => readonly number[], fill: number) =>
      Int32Array.from(reqs.flatMap((r) => [...pick(r), ...new Array<number>(width - pick(r).length).fill(fill)]));
    const i32 = (values: Int32Array) => tensor(values, { dtype: 'i32', shape: [reqs.length, width], backend });
    return {
      inputIds: i32(padded((r) => r.ids, this.#opts.padTokenId)),
      attentionMask: i32(padded((r) => r.ids.map(() => 1), 0)),
      // Only BERT takes token types (RoBERTa has one type; GPT-2 would add them to its embeddings).
      ...(this.model.modelType === 'bert' ? { tokenTypeIds: i32(padded((r) => r.typeIds, 0)) } : {}),
    };
  }

  async #generateBatch(jobs: Extract<Job, { kind: 'generate' }>[]): Promise<void> {
    const first = jobs[0]!.req;
    const doSample = (first.temperature ?? 0) > 0;
    const decoder = new Decoder(
      this.model,
      jobs.map((j) => j.req.ids),
      {
        doSample,
        ...(doSample
          ? {
              temperature: first.temperature!,
              ...(first.topK === undefined ? {} : { topK: first.topK }),
              ...(first.topP === undefined ? {} : { topP: first.topP }),
              ...(first.seed === undefined ? {} : { seed: first.seed }),
            }
          : {}),
        ...(first.stopTokenIds ? { stopTokenIds: first.stopTokenIds } : {}),
        maxNewTokens: Math.max(...jobs.map((j) => j.req.maxNewTokens)),
        // Left padding of shorter prompts: an id the model embeds (config ids may lie outside its vocabulary).
        padTokenId: this.#opts.padTokenId,
      },
    );
    const eos = this.model.config['eos_token_id'];
    const stop = new Set(first.stopTokenIds ?? (eos === undefined || eos === null ? [] : [eos].flat()));
    const tokens = jobs.map((): number[] => []);
    const done = jobs.map(() => false);
    const finish = (r: number, reason: GenerateResult['finishReason']) => {
      done[r] = true;
      const job = jobs[r]!;
      if (reason === 'cancelled') job.reject(abortError());
      else job.resolve({ tokens: tokens[r]!, finishReason: reason, promptTokens: job.req.ids.length } as never);
    };
    try {
      // Each step's forward runs with the rows on their adapters; its ids are read asynchronously, and the
      // event loop runs between steps. A row finishes (and answers) as soon as it stops.
      while (!decoder.finished && done.some((d) => !d)) {
        const next = await decoder.stepAsync((forward) => this.#withAdapters(jobs, forward));
        this.#stats.steps++;
        next.tokens.forEach((t, r) => {
          if (done[r]) return;
          const job = jobs[r]!;
          if (job.signal?.aborted) return finish(r, 'cancelled');
          if (t === null) return finish(r, 'stop');
          tokens[r]!.push(t);
          this.#stats.generatedTokens++;
          job.onToken?.(t);
          if (stop.has(t)) finish(r, 'stop');
          else if (tokens[r]!.length >= job.req.maxNewTokens) finish(r, 'length');
        });
        await new Promise((resolve) => setImmediate(resolve));
      }
      jobs.forEach((_, r) => done[r] || finish(r, 'length'));
    } finally {
      decoder.dispose();
    }
  }
}
