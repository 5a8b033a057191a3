// `vera serve`: many adapters on one base model over HTTP. The server is the HTTP side only: a table of
// routes (routes/vera.ts: vera's own; routes/openai.ts and routes/encoders.ts: the OpenAI-compatible
// ones and vLLM's /classify), each a small handler from a request context to a reply, dispatched here,
// over an Engine (engine/types.ts: ids in, tokens/logits/embeddings out) and an AdapterCatalog
// (catalog.ts: a folder of adapters, or any adapter store). The default engine is LocalEngine (the model
// in-process, static mixed-adapter batches); any Engine can be passed instead.
//
// Every answer is counted in /metrics by route and status; a client that goes away cancels its request
// (the engine call's AbortSignal). Errors are {"error": "…"} on vera's routes and OpenAI's
// {"error": {message, type, param, code}} on the OpenAI ones, with the status (429/503 with retry-after).

import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join, resolve } from 'node:path';
import { loadBaseFor } from '../adapters/load.js';
import { readJsonFile } from '../io/json.js';
import { loadImageProcessorConfig } from '../io/image.js';
import { Tokenizer, hasTokenizerFiles } from '../io/tokenizer.js';
import { asConfigObject } from '../models/config-utils.js';
import type { PreTrainedModel } from '../models/pretrained.js';
import { defaultMaxLength, padIdFor } from '../models/text-inputs.js';
import type { App } from './app.js';
import { type AdapterCatalog, FolderCatalog, filesToDir, findAdapters } from './catalog.js';
import type { AdapterSource, Engine } from './engine/types.js';
import {
  type Ctx,
  type Family,
  HttpError,
  type Reply,
  type Route,
  errorBody,
  errorHeaders,
  isAbort,
  readBody,
  statusOf,
} from './http.js';
import { LocalEngine } from './local-engine.js';
import { ServerMetrics } from './metrics.js';
import { poolingOf } from './pooling.js';
import { encoderRoutes } from './routes/encoders.js';
import { openaiRoutes } from './routes/openai.js';
import { type VeraClassify, type VeraGenerate, classify, generate, loadedNames, veraRoutes } from './routes/vera.js';

export { HttpError } from './http.js';
export { findAdapters } from './catalog.js';

export interface ServeOptions {
  /** The base model directory (config, tokenizer; the weights too, for the default engine). */
  model: string;
  /** A folder whose subfolders are PEFT adapters (a FolderCatalog); or give `catalog`. */
  adapters?: string;
  /** Where adapters live (an adapter store, say); default: the `adapters` folder. */
  catalog?: AdapterCatalog;
  /** The engine to run requests on; default: a LocalEngine over the base model. */
  engine?: Engine;
  /** An adapter folder whose head decides the base's class, when the adapters are not a folder. */
  baseFrom?: string;
  /** The base's id in /v1/models and `model` (default: the model directory's name). */
  modelName?: string;
  /** Most requests in one batch (default 16; LocalEngine). */
  maxBatch?: number;
  /** How long a request waits for others to share its batch, in ms (default 2; LocalEngine). */
  batchWindowMs?: number;
  /** Most adapters held in memory at once (default 64; LocalEngine). */
  maxLoaded?: number;
  /** Most requests waiting for a batch; beyond, requests get 503 (default 1024; LocalEngine). */
  maxQueued?: number;
  /** Largest new-token count a generate request may ask for (default 512). */
  maxNewTokensLimit?: number;
  /** Most choices (`n`) per request (default 8). */
  maxChoices?: number;
  /** Most inputs (prompts × n, embedding or classification inputs) per request (default 64). */
  maxInputs?: number;
  /** Class names in id order (default: config.json's id2label). */
  labelNames?: string[];
  /** Origin that browsers may call the server from (CORS; '*' for any); default none. */
  cors?: string;
  /** Storage of the base's linear and embedding weights (default f32; bf16 halves their memory). */
  dtype?: 'f32' | 'bf16';
  /**
   * Called before every route: returns the tenant the request acts for (undefined: all adapters), or
   * throws an HttpError (401, 403, 429) to refuse it. For keys and tenants (../auth).
   */
  authorize?: (req: IncomingMessage, route: { method: string; label: string }) => Promise<string | undefined>;
  log?: (line: string) => void;
}

export class AdapterServer {
  readonly engine: Engine;
  readonly catalog: AdapterCatalog;
  readonly #app: App;
  readonly #routes: Route[];
  readonly #opts: ServeOptions;
  #server: Server | null = null;

  constructor(opts: ServeOptions) {
    this.#opts = opts;
    if (!opts.catalog && opts.adapters === undefined) throw new Error('give the adapters folder or a catalog');
    const folder = opts.catalog ? null : new FolderCatalog(opts.adapters!);
    this.catalog = opts.catalog ?? folder!;
    const tokenizer = hasTokenizerFiles(opts.model) ? Tokenizer.fromDir(opts.model) : null;
    const configFile = join(opts.model, 'config.json');
    const config = asConfigObject(readJsonFile(configFile), configFile);
    const padId = padIdFor(config, tokenizer);
    this.engine =
      opts.engine ??
      new LocalEngine({
        model: this.#loadBase(folder, padId),
        source: sourceOf(this.catalog),
        padTokenId: padId,
        pooling: poolingOf(opts.model),
        ...pick(opts, ['maxBatch', 'batchWindowMs', 'maxLoaded', 'maxQueued', 'log']),
      });
    const info = this.engine.info;
    const metrics = new ServerMetrics({
      queued: () => this.engine.stats().waiting,
      running: () => this.engine.stats().running,
      batchSize: () => this.engine.stats().batchSize,
      loadedAdapters: () => this.engine.stats().loaded.length,
      maxLoaded: () => opts.maxLoaded ?? 64,
      runningAdapters: () => slotsOf(this.engine).running,
      waitingAdapters: () => slotsOf(this.engine).waiting,
    });
    this.#app = {
      engine: this.engine,
      catalog: this.catalog,
      tokenizer,
      modelDir: opts.model,
      baseId: opts.modelName ?? basename(resolve(opts.model)),
      limits: {
        maxNewTokens: opts.maxNewTokensLimit ?? 512,
        maxChoices: opts.maxChoices ?? 8,
        maxInputs: opts.maxInputs ?? 64,
      },
      metrics,
      labelNames: opts.labelNames,
      imageConfig: info.task === 'image-classification' ? loadImageProcessorConfig(opts.model) : null,
      maxLength: defaultMaxLength(info.config, tokenizer),
      // Learned position embeddings (GPT-2) end at n_positions; rotary ones have no table to run off.
      positions: info.modelType === 'gpt2' ? Number(info.config['n_positions']) : Infinity,
      created: Math.floor(Date.now() / 1000),
    };
    this.#routes = [...veraRoutes(this.#app), ...openaiRoutes(this.#app), ...encoderRoutes(this.#app)];
  }

  /**
   * The base in the class its adapters need: a classification adapter trained on a causal-LM base needs
   * the family's classifier (adapters/load.ts), so the first adapter of the folder decides.
   */
  #loadBase(folder: FolderCatalog | null, padId: number): PreTrainedModel {
    const first = folder ? (findAdapters(folder.dir).values().next().value ?? null) : (this.#opts.baseFrom ?? null);
    return loadBaseFor(this.#opts.model, first, { padTokenId: padId, dtype: this.#opts.dtype ?? 'f32' }).eval();
  }

  /**
   * A server over any catalog: like the constructor, but the base's class is decided by the catalog's
   * first adapter (read from the catalog), as the constructor decides it from a folder's first.
   */
  static async open(opts: ServeOptions): Promise<AdapterServer> {
    if (opts.engine || !opts.catalog || opts.baseFrom) return new AdapterServer(opts);
    const first = (await opts.catalog.list())[0];
    const got = first ? await opts.catalog.get(first.name) : null;
    if (!got) return new AdapterServer(opts);
    const { dir, remove } = filesToDir(got.files);
    try {
      return new AdapterServer({ ...opts, baseFrom: dir });
    } finally {
      remove();
    }
  }

  /** The base model, when the engine runs in this process (LocalEngine). */
  get model(): PreTrainedModel {
    if (!(this.engine instanceof LocalEngine)) throw new Error('the engine does not run in this process');
    return this.engine.model;
  }

  get task(): string {
    return this.engine.info.task;
  }

  get tokenizer(): Tokenizer | null {
    return this.#app.tokenizer;
  }

  /** The base's id (in /v1/models and `model`). */
  get baseId(): string {
    return this.#app.baseId;
  }

  get metrics(): ServerMetrics {
    return this.#app.metrics;
  }

  /** Adapters found, and those in memory (least recently used first). */
  async adapters(): Promise<{ available: string[]; loaded: string[] }> {
    return { available: (await this.catalog.list()).map((a) => a.name), loaded: loadedNames(this.#app) };
  }

  /** Classifies one text (with an optional pair) or one image (PNG/JPEG bytes), batched with others. */
  classify(req: VeraClassify): ReturnType<typeof classify> {
    return classify(this.#app, req);
  }

  /** Continues a prompt, or answers a conversation (`messages`, by the chat template); batched with others. */
  generate(req: VeraGenerate): ReturnType<typeof generate> {
    return generate(this.#app, req);
  }

  /** Starts listening; resolves with the port (0 picks a free one). */
  listen(port = 8080, host = '127.0.0.1'): Promise<number> {
    // #handle answers every error itself; a failure to answer (the client went away) ends that socket only.
    const server = createServer((req, res) => void this.#handle(req, res).catch(() => res.destroy()));
    this.#server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
    });
  }

  /** Stops listening and closes the engine. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections(); // streams and keep-alive sockets would hold close() open
      });
    }
    await this.engine.close();
  }

  #match(method: string, path: string): { route: Route | null; allowed: boolean } {
    const fits = (r: Route) => (typeof r.path === 'string' ? r.path === path : r.path.test(path));
    const onPath = this.#routes.filter(fits);
    return { route: onPath.find((r) => r.method === method) ?? null, allowed: onPath.length > 0 };
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0]!;
    // Browsers on other origins (a web page calling the server) need CORS, when allowed (--cors).
    if (this.#opts.cors) {
      res.setHeader('access-control-allow-origin', this.#opts.cors);
      res.setHeader('access-control-allow-methods', 'GET, POST, DELETE, OPTIONS');
      res.setHeader('access-control-allow-headers', 'content-type, authorization');
      if (method === 'OPTIONS') {
        res.writeHead(204).end();
        return;
      }
    }
    const { route, allowed } = this.#match(method, path);
    const family: Family = route?.family ?? 'vera';
    const label = route?.label ?? (allowed ? path : 'unmatched');
    // The client going away before the answer is complete cancels the request.
    const abort = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    let status = 500;
    try {
      if (!route) {
        if (allowed) throw new HttpError(405, `${method} is not allowed on ${path}`);
        throw new HttpError(
          404,
          `no route ${method} ${path} (GET /health, GET /metrics, GET /v1/adapters, POST /v1/classify, POST /v1/generate, ` +
            'GET /v1/models, POST /v1/completions, POST /v1/chat/completions, POST /v1/embeddings, POST /classify)',
        );
      }
      const tenant = this.#opts.authorize ? await this.#opts.authorize(req, { method, label }) : undefined;
      let body: Promise<Record<string, unknown>> | null = null;
      const ctx: Ctx = { method, path, req, signal: abort.signal, tenant, body: () => (body ??= readBody(req)) };
      status = await write(res, await route.handler(ctx));
    } catch (e) {
      status = isAbort(e) && abort.signal.aborted ? 499 : statusOf(e);
      if (status === 500) this.#opts.log?.(`${method} ${path}: ${e instanceof Error ? (e.stack ?? e.message) : e}`);
      if (!res.headersSent && !res.destroyed) sendJson(res, status, errorBody(e, family), errorHeaders(e));
    } finally {
      this.#app.metrics.observe(method, label, status, (performance.now() - started) / 1000);
    }
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Writes a reply; resolves with its status. A stream's first event is awaited before the headers. */
async function write(res: ServerResponse, reply: Reply): Promise<number> {
  if ('json' in reply) {
    sendJson(res, reply.status, reply.json, reply.headers);
    return reply.status;
  }
  if ('text' in reply) {
    res.writeHead(reply.status, { 'content-type': reply.contentType, 'content-length': Buffer.byteLength(reply.text) });
    res.end(reply.text);
    return reply.status;
  }
  const it = reply.sse[Symbol.asyncIterator]();
  const event = (data: unknown) => {
    if (!res.writableEnded && !res.destroyed)
      res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
  };
  let next = await it.next(); // an error here is answered as a plain error by #handle
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  try {
    while (!next.done) {
      if (res.destroyed) {
        await it.return?.();
        return 499;
      }
      event(next.value);
      next = await it.next();
    }
  } catch (e) {
    if (res.destroyed) return 499;
    event(reply.onError(e));
  }
  res.end();
  return 200;
}

function pick<T extends object, K extends keyof T>(o: T, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** The engine's source of adapter files: the catalog's bytes of the version asked for. */
function sourceOf(catalog: AdapterCatalog): AdapterSource {
  return async (ref) => {
    const got = await catalog.get(ref.name, { version: ref.version });
    if (!got) throw new HttpError(404, `adapter "${ref.name}" (version ${ref.version}) is gone`);
    return got.files;
  };
}

/** Adapters of the running and waiting requests, where the engine tells (LocalEngine does). */
function slotsOf(engine: Engine): { running: string[]; waiting: string[] } {
  const e = engine as Engine & { adapterSlots?: () => { running: string[]; waiting: string[] } };
  return e.adapterSlots ? e.adapterSlots() : { running: [], waiting: [] };
}
