// The Engine on the main thread, run in a worker thread (worker.ts): each call is a message and its
// answer a message (streamed tokens too); an aborted signal sends a cancel; the worker's requests for
// adapter files are answered here from the AdapterSource. stats() answers from the worker's latest
// report (sent with every answer and every statsEveryMs). Errors come back as EngineError with the
// worker's message and status; a worker that stops fails every pending call with 500.

import { Worker } from 'node:worker_threads';
import type { EngineOptions } from './local.js';
import { type FromWorker, type ToWorker, type WorkerInit, fromWire, toWire } from './protocol.js';
import {
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

export interface WorkerEngineOptions extends Omit<EngineOptions, 'log'> {
  source: AdapterSource;
  /** A backend name for the worker ('js', 'native', 'cuda'); default the registry's default. */
  backend?: string;
  /** How often the worker reports its stats, in ms (default 100). */
  statsEveryMs?: number;
  log?: (line: string) => void;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  onToken?: ((token: number) => void) | undefined;
}

export class WorkerEngine implements Engine {
  readonly info: Engine['info'];
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #stats: EngineStats;
  #nextId = 0;
  #stopped: Error | null = null;
  #closed: Promise<void> | null = null;

  /** Starts the worker and waits until its model is loaded (rejects with the load error). */
  static start(opts: WorkerEngineOptions): Promise<WorkerEngine> {
    const { source, log, backend, statsEveryMs, ...options } = opts;
    const init: WorkerInit = {
      options,
      ...(backend ? { backend } : {}),
      statsEveryMs: statsEveryMs ?? 100,
    };
    const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: { veraEngine: init } });
    return new Promise((resolve, reject) => {
      // Until ready, the worker asks only for adapter files (a head adapter) and logs.
      const early = (m: FromWorker) => {
        if (m.type === 'source') void answerSource(worker, source, m.id, m.ref);
        else if (m.type === 'log') log?.(m.line);
        else if (m.type === 'failed') {
          worker.off('message', early);
          void worker.terminate();
          reject(fromWire(m.error));
        } else if (m.type === 'ready') {
          worker.off('message', early);
          worker.off('error', fail);
          resolve(new WorkerEngine(worker, m.info, m.stats, source, log));
        }
      };
      const fail = (e: Error) => reject(new EngineError(500, `the engine worker failed to start: ${e.message}`));
      worker.on('message', early);
      worker.once('error', fail);
    });
  }

  private constructor(
    worker: Worker,
    info: Engine['info'],
    stats: EngineStats,
    source: AdapterSource,
    log: ((line: string) => void) | undefined,
  ) {
    this.#worker = worker;
    this.info = info;
    this.#stats = stats;
    worker.on('message', (m: FromWorker) => {
      switch (m.type) {
        case 'source':
          void answerSource(worker, source, m.id, m.ref);
          return;
        case 'token':
          this.#pending.get(m.id)?.onToken?.(m.token);
          return;
        case 'result':
        case 'error': {
          this.#stats = m.stats;
          const p = this.#pending.get(m.id);
          this.#pending.delete(m.id);
          if (m.type === 'result') p?.resolve(m.value);
          else p?.reject(fromWire(m.error));
          return;
        }
        case 'stats':
          this.#stats = m.stats;
          return;
        case 'log':
          log?.(m.line);
          return;
        default:
          return;
      }
    });
    const stop = (why: string) => {
      this.#stopped ??= new EngineError(500, `the engine worker stopped: ${why}`);
      for (const p of this.#pending.values()) p.reject(this.#stopped);
      this.#pending.clear();
    };
    worker.on('error', (e) => stop(e.message));
    worker.on('exit', (code) => stop(`exit code ${code}`));
  }

  generate(
    req: GenerateRequest,
    opts: CallOptions & { onToken?: (token: number) => void } = {},
  ): Promise<GenerateResult> {
    return this.#call(
      (id) => ({ type: 'generate', id, req, stream: opts.onToken !== undefined }),
      opts.signal,
      opts.onToken,
    ) as Promise<GenerateResult>;
  }

  classify(req: ClassifyRequest, opts: CallOptions = {}): Promise<ClassifyResult> {
    return this.#call((id) => ({ type: 'classify', id, req }), opts.signal) as Promise<ClassifyResult>;
  }

  embed(req: EmbedRequest, opts: CallOptions = {}): Promise<EmbedResult> {
    return this.#call((id) => ({ type: 'embed', id, req }), opts.signal) as Promise<EmbedResult>;
  }

  evict(name: string, keepVersion?: number): void {
    if (!this.#stopped) this.#post({ type: 'evict', name, ...(keepVersion === undefined ? {} : { keepVersion }) });
  }

  stats(): EngineStats {
    return this.#stats;
  }

  /** Running requests finish, waiting ones are rejected; then the worker ends. */
  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      if (this.#stopped) return resolve();
      const done = (m: FromWorker) => m.type === 'closed' && finish();
      const finish = () => {
        this.#worker.off('message', done);
        void this.#worker.terminate().then(() => resolve());
      };
      this.#worker.on('message', done);
      this.#worker.once('exit', () => resolve());
      this.#post({ type: 'close' });
    });
    return this.#closed;
  }

  #call(make: (id: number) => ToWorker, signal?: AbortSignal, onToken?: (token: number) => void): Promise<unknown> {
    if (this.#stopped) return Promise.reject(this.#stopped);
    if (this.#closed) return Promise.reject(new EngineError(503, 'the engine is closed'));
    if (signal?.aborted) return Promise.reject(abortError());
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onToken });
      // The worker answers a cancelled call with an AbortError (it leaves its batch at the next step).
      signal?.addEventListener('abort', () => this.#pending.has(id) && this.#post({ type: 'cancel', id }), {
        once: true,
      });
      this.#post(make(id));
    });
  }

  #post(m: ToWorker): void {
    this.#worker.postMessage(m);
  }
}

async function answerSource(worker: Worker, source: AdapterSource, id: number, ref: Parameters<AdapterSource>[0]) {
  let reply: ToWorker;
  try {
    reply = { type: 'source-reply', id, files: await source(ref) };
  } catch (e) {
    reply = { type: 'source-reply', id, error: toWire(e) };
  }
  worker.postMessage(reply);
}
