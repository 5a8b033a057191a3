// `vera serve`: many adapters on one base model over HTTP. The server is the HTTP side only: a table of
// routes (routes/vera.ts: vera's own; routes/openai.ts and routes/encoders.ts: the OpenAI-compatible
// ones and vLLM's /classify; the admin routes of auth/admin-routes.ts: adapters and keys), each a small
// handler from a request context to a reply, dispatched here, over an Engine (engine/types.ts: ids in,
// tokens/logits/embeddings out) and an AdapterStore (store/: a folder, SQLite or PostgreSQL), which is
// the engine's source of adapter files. The default engine runs in a worker thread (engine/client.ts),
// so this thread's event loop (connections, /health, /metrics) never waits on a forward; `engine:
// 'local'` runs it in-process (tests, debugging), and any Engine can be passed.
//
// Keys and tenants (auth/): once the store holds an API key (or VERA_ADMIN_KEY seeds one), every route
// but /health (and /metrics, unless metricsAuth) needs `Authorization: Bearer <key>`; a tenant's key
// sees and uses its own adapters and those without an owner (another tenant's answers 404, as an absent
// one does); an admin key sees and manages everything. Without any key the server is the local admin's
// and listens on loopback only, unless insecureNoAuth says otherwise.
//
// Every answer is counted in /metrics by route and status; a client that goes away cancels its request
// (the engine call's AbortSignal). Errors are {"error": "…"} on vera's routes and OpenAI's
// {"error": {message, type, param, code}} on the others, with the status (429/503 with retry-after).

import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { basename, join, resolve } from 'node:path';
import { defaultBackend } from '../backends/registry.js';
import { readJsonFile } from '../io/json.js';
import { loadImageProcessorConfig } from '../io/image.js';
import { Tokenizer, hasTokenizerFiles } from '../io/tokenizer.js';
import { asConfigObject } from '../models/config-utils.js';
import type { PreTrainedModel } from '../models/pretrained.js';
import { defaultMaxLength } from '../models/text-inputs.js';
import type { App } from './app.js';
import { handleAdminRequest } from './auth/admin-routes.js';
import { toApiError } from './auth/errors.js';
import { ApiKeys } from './auth/keys.js';
import { LOCAL_ADMIN, type Principal, listTenant, requireAdmin } from './auth/policy.js';
import { type RateLimitOptions, RateLimiter } from './auth/rate-limit.js';
import { WorkerEngine } from './engine/client.js';
import { LocalEngine } from './engine/local.js';
import { refKey } from './engine/adapters.js';
import { type AdapterRef, type AdapterSource, type Engine, EngineError } from './engine/types.js';
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
import { ServerMetrics } from './metrics.js';
import { encoderRoutes } from './routes/encoders.js';
import { openaiRoutes } from './routes/openai.js';
import { type VeraClassify, type VeraGenerate, classify, generate, loadedNames, veraRoutes } from './routes/vera.js';
import { findAdapters } from './store/folder.js';
import { adapterJson, type UploadLimits } from './store/http-handlers.js';
import { openStore } from './store/index.js';
import { type AdapterStore, StoreError } from './store/types.js';
import { type BaseModelValidator, baseModelValidator } from './store/validate.js';

export { HttpError } from './http.js';
export { findAdapters } from './store/folder.js';

export interface ServeOptions {
  /** The base model directory (config, tokenizer, weights). */
  model: string;
  /**
   * Where adapters live: an opened AdapterStore, or a spec for openStore (a folder, `sqlite:FILE`,
   * `postgres://…`), opened with uploads validated against the base as loading does.
   */
  store?: AdapterStore | string;
  /** A folder whose subfolders are PEFT adapters (a folder store that must exist); or give `store`. */
  adapters?: string;
  /**
   * What runs the model: 'worker' (default: an engine in a worker thread), 'local' (in this thread:
   * tests, debugging), or any Engine (its adapter source is then the caller's business).
   */
  engine?: 'worker' | 'local' | Engine;
  /** The worker's backend ('js', 'native', 'cuda'); default this thread's default backend. */
  backend?: string;
  /** The base's id in /v1/models and `model` (default: the model directory's name). */
  modelName?: string;
  /** Most rows of a generation batch, most requests of a classification batch (default 16). */
  maxBatch?: number;
  /** How long a classification or embedding request waits for others to share its batch, in ms (default 2). */
  batchWindowMs?: number;
  /** Most adapters held in memory at once (default 64). */
  maxLoaded?: number;
  /** Most requests waiting; beyond, requests get 503 (default 1024). */
  maxQueued?: number;
  /** Generation batches: 'continuous' (default; rows join and leave at every step) or 'static' (for comparison). */
  batching?: 'continuous' | 'static';
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
  /** An admin key to seed into the store (default $VERA_ADMIN_KEY; see auth/keys.ts seedAdmin). */
  adminKey?: string;
  /** A per-key rate limit (429 with Retry-After beyond it); default none. */
  rateLimit?: RateLimitOptions | RateLimiter;
  /** Whether GET /metrics needs an admin key too, when keys are required (default false: open, like /health). */
  metricsAuth?: boolean;
  /** Listen beyond loopback although no key exists (every caller is then the admin). */
  insecureNoAuth?: boolean;
  /** Bounds of adapter uploads (POST /v1/adapters). */
  uploadLimits?: UploadLimits;
  /**
   * Most ms from a connection's first byte (or from its previous request) to a request's last header
   * (default 10 000): beyond, 408 and the connection closed. A connection that sends nothing is bounded too.
   */
  headersTimeoutMs?: number;
  /**
   * Most ms to receive a whole request, headers and body (default 300 000: an upload of the largest
   * adapter over a slow link): beyond, 408 and the connection closed. Answering takes what it takes.
   */
  requestTimeoutMs?: number;
  /** How long an idle keep-alive connection is kept after an answer, in ms (default 5000). */
  keepAliveTimeoutMs?: number;
  /**
   * Replaces the key check: called before every route but /health, returns who the request is, or
   * throws an error with a status (401, 403, 429) to refuse it.
   */
  authorize?: (req: IncomingMessage, route: { method: string; label: string }) => Promise<Principal>;
  log?: (line: string) => void;
}

/** Loopback addresses: a server without keys may listen only there. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

const OPEN_ROUTES = new Set(['/health']);

/** The defaults of the bounds on receiving a request (ServeOptions: headersTimeoutMs, …). */
export const TIMEOUTS = { headersMs: 10_000, requestMs: 300_000, keepAliveMs: 5_000 } as const;

/** The requests whose headers a socket has sent and whose answer is not complete (see #clientError). */
interface InFlight {
  res: ServerResponse;
  family: Family;
  timedOut: boolean;
}

export class AdapterServer {
  readonly engine: Engine;
  readonly store: AdapterStore;
  readonly keys: ApiKeys;
  readonly #app: App;
  readonly #routes: Route[];
  readonly #opts: ServeOptions;
  readonly #limiter: RateLimiter | null;
  readonly #owned: { store: boolean; close?: () => void };
  #server: Server | null = null;
  #authRequired: boolean;
  #authCheckedAt = 0;
  readonly #inFlight = new WeakMap<Socket, InFlight>();

  /**
   * A server over a running engine and an opened store; open() makes both. `authRequired`: whether
   * keys exist (open() asks the store).
   */
  constructor(
    opts: ServeOptions,
    parts: {
      engine: Engine;
      store: AdapterStore;
      authRequired: boolean;
      /** What the server opened and closes: the store, and whatever else (a validator) close() frees. */
      owned?: { store: boolean; close?: () => void };
    },
  ) {
    this.#opts = opts;
    this.engine = parts.engine;
    this.store = parts.store;
    this.keys = new ApiKeys(parts.store.keys);
    this.#authRequired = parts.authRequired;
    this.#owned = parts.owned ?? { store: false };
    this.#limiter =
      opts.rateLimit === undefined
        ? null
        : opts.rateLimit instanceof RateLimiter
          ? opts.rateLimit
          : new RateLimiter(opts.rateLimit);
    const tokenizer = hasTokenizerFiles(opts.model) ? Tokenizer.fromDir(opts.model) : null;
    const info = this.engine.info;
    const metrics = new ServerMetrics({
      queued: () => this.engine.stats().waiting,
      running: () => this.engine.stats().running,
      batchSize: () => this.engine.stats().batchSize,
      loadedAdapters: () => this.engine.stats().loaded.length,
      maxLoaded: () => opts.maxLoaded ?? 64,
      runningAdapters: () => [],
      waitingAdapters: () => [],
    });
    this.#app = {
      engine: this.engine,
      store: this.store,
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
    this.#routes = [
      ...veraRoutes(this.#app),
      ...openaiRoutes(this.#app),
      ...encoderRoutes(this.#app),
      ...this.#adminRoutes(),
    ];
  }

  /**
   * Opens the store (`store`, or the `adapters` folder), seeds VERA_ADMIN_KEY, and starts the engine
   * over the base model, in the class the store's first adapter needs (a classification adapter trained
   * on a causal-LM base needs the family's classifier: adapters/load.ts).
   */
  static async open(opts: ServeOptions): Promise<AdapterServer> {
    if (opts.store === undefined && opts.adapters === undefined) throw new Error('give a store or an adapters folder');
    if (opts.store !== undefined && opts.adapters !== undefined)
      throw new Error('give a store or an adapters folder, not both');
    // Model problems are reported before anything is opened or started.
    const configFile = join(opts.model, 'config.json');
    asConfigObject(readJsonFile(configFile), configFile);
    if (opts.adapters !== undefined) findAdapters(opts.adapters); // the folder must exist: a typo is an error now
    let validator: BaseModelValidator | null = null;
    // Uploads are validated against the base as the engine loads them; the base is loaded for that on the first upload.
    const validate = (name: string, files: Parameters<BaseModelValidator>[1]) =>
      (validator ??= baseModelValidator(opts.model, { dtype: opts.dtype ?? 'f32' }))(name, files);
    const spec = typeof opts.store === 'string' ? opts.store : opts.adapters;
    const store = spec === undefined ? (opts.store as AdapterStore) : await openStore(spec, { validate });
    const owned = { store: spec !== undefined, close: () => validator?.close() };
    try {
      const keys = new ApiKeys(store.keys);
      await keys.seedAdmin(opts.adminKey ?? process.env['VERA_ADMIN_KEY']);
      const authRequired = opts.authorize === undefined && (await keys.any());
      const engine = typeof opts.engine === 'object' ? opts.engine : await AdapterServer.#startEngine(opts, store);
      return new AdapterServer(opts, { engine, store, authRequired, owned });
    } catch (e) {
      if (owned.store) await store.close();
      owned.close();
      throw e;
    }
  }

  static async #startEngine(opts: ServeOptions, store: AdapterStore): Promise<Engine> {
    const first = (await store.list())[0];
    const options = {
      model: opts.model,
      source: sourceOf(store),
      headFrom: first ? { name: first.name, version: first.version } : null,
      ...pick(opts, ['dtype', 'maxBatch', 'maxLoaded', 'maxQueued', 'batchWindowMs', 'batching', 'log']),
    };
    if (opts.engine === 'local') return LocalEngine.create(options);
    return WorkerEngine.start({ ...options, backend: opts.backend ?? defaultBackend().name });
  }

  /** The base model, when the engine runs in this thread (engine: 'local'). */
  get model(): PreTrainedModel {
    if (!(this.engine instanceof LocalEngine)) throw new Error('the engine does not run in this thread');
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

  /** Whether requests need an API key (the store holds one, or a custom authorize hook decides). */
  get authRequired(): boolean {
    return this.#authRequired || this.#opts.authorize !== undefined;
  }

  /** Adapters in the store, and those in memory (least recently used first). */
  async adapters(): Promise<{ available: string[]; loaded: string[] }> {
    return { available: (await this.store.list()).map((a) => a.name), loaded: loadedNames(this.#app) };
  }

  /** Classifies one text (with an optional pair) or one image (PNG/JPEG bytes), batched with others. */
  classify(req: VeraClassify): ReturnType<typeof classify> {
    return classify(this.#app, req);
  }

  /** Continues a prompt, or answers a conversation (`messages`, by the chat template); batched with others. */
  generate(req: VeraGenerate): ReturnType<typeof generate> {
    return generate(this.#app, req);
  }

  /**
   * Starts listening; resolves with the port (0 picks a free one). Without any API key only a loopback
   * host is allowed (unless insecureNoAuth).
   */
  listen(port = 8080, host = '127.0.0.1'): Promise<number> {
    if (!this.authRequired && !isLoopback(host) && !this.#opts.insecureNoAuth)
      return Promise.reject(
        new Error(
          `refusing to listen on ${host}: the store ${this.store.spec} has no API keys, so anyone who reaches the ` +
            'server could use and change every adapter. Create a key (vera keys add --store SPEC --tenant NAME ' +
            '--admin) or set VERA_ADMIN_KEY, listen on 127.0.0.1, or pass --insecure-no-auth',
        ),
      );
    // Bounds on receiving a request: a client that drips its headers or body, or sends part of a request
    // and goes silent, gets 408 and is cut off (#clientError). Node checks them every
    // connectionsCheckingInterval (30 s by default, which would let a bound of 1 s run 30 s): a fifth of
    // the shortest bound, at most 1 s.
    const requestMs = this.#opts.requestTimeoutMs ?? TIMEOUTS.requestMs;
    const headersMs = Math.min(this.#opts.headersTimeoutMs ?? TIMEOUTS.headersMs, requestMs);
    const server = createServer(
      {
        headersTimeout: headersMs,
        requestTimeout: requestMs,
        keepAliveTimeout: this.#opts.keepAliveTimeoutMs ?? TIMEOUTS.keepAliveMs,
        connectionsCheckingInterval: Math.max(20, Math.min(1000, Math.floor(headersMs / 5))),
      },
      // #handle answers every error itself; a failure to answer (the client went away) ends that socket only.
      (req, res) => void this.#handle(req, res).catch(() => res.destroy()),
    );
    server.on('clientError', (e: NodeJS.ErrnoException, socket: Socket) =>
      this.#clientError(e, socket, { headersMs, requestMs }),
    );
    this.#server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
    });
  }

  /** Stops listening, closes the engine, and the store when the server opened it. */
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
    if (this.#owned.store) await this.store.close();
    this.#owned.close?.();
  }

  /**
   * A connection's error outside any handler: a request not received within its bound (408), headers
   * beyond Node's limit (431) or that do not parse (400). Answered as Node would, with an error body in
   * the shape of the route's family (OpenAI's before the route is known), when nothing of an answer has
   * been written yet; then the connection is closed (the rest of a dripping request is never read).
   */
  #clientError(e: NodeJS.ErrnoException, socket: Socket, bounds: { headersMs: number; requestMs: number }): void {
    const flight = this.#inFlight.get(socket);
    if (e.code === 'ECONNRESET' || !socket.writable || flight?.res.headersSent) {
      socket.destroy();
      return;
    }
    let status = 400;
    let message = `bad HTTP request: ${e.message}`;
    if (e.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408;
      message = flight
        ? `the request was not received whole within ${bounds.requestMs} ms (--request-timeout-ms)`
        : `the request's headers were not received within ${bounds.headersMs} ms (--headers-timeout-ms)`;
      if (flight) flight.timedOut = true;
    } else if (e.code === 'HPE_HEADER_OVERFLOW') {
      status = 431;
      message = 'the request headers are too large';
    }
    const text = `${JSON.stringify(errorBody(new HttpError(status, message), flight?.family ?? 'openai'))}\n`;
    const reason = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' }[status];
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
      () => socket.destroy(),
    );
    // A client that never reads its answer is not waited for.
    setTimeout(() => socket.destroy(), 1000).unref();
  }

  /** The admin routes (auth/admin-routes.ts), with GET /v1/adapters saying which adapters are loaded. */
  #adminRoutes(): Route[] {
    const deps = {
      store: this.store,
      keys: this.keys,
      ...(this.#opts.uploadLimits ? { limits: this.#opts.uploadLimits } : {}),
    };
    const admin = async (ctx: Ctx): Promise<Reply> => {
      const reply = await handleAdminRequest(ctx.req, ctx.path, deps, ctx.principal);
      if (!reply) throw new HttpError(404, `no route ${ctx.method} ${ctx.path}`);
      const body = reply.json as { id?: unknown; version?: unknown; deleted?: unknown };
      // A new version is served to new requests at once; rows on the old one finish on it, then it is unloaded.
      if (ctx.method === 'POST' && ctx.path === '/v1/adapters' && reply.status === 201)
        this.engine.evict(String(body.id), Number(body.version));
      if (ctx.method === 'DELETE' && body.deleted === true) this.engine.evict(String(body.id));
      if (ctx.method === 'POST' && ctx.path === '/v1/keys') this.#authCheckedAt = 0; // keys may be required now
      return { status: reply.status, json: reply.json, ...(reply.headers ? { headers: reply.headers } : {}) };
    };
    const route = (method: string, path: string | RegExp, label: string, handler = admin): Route => ({
      method,
      path,
      label,
      family: 'openai',
      handler,
    });
    return [
      route('GET', '/v1/adapters', '/v1/adapters', async (ctx) => {
        const loaded = new Set(this.engine.stats().loaded);
        const list = await this.store.list(ctx.tenant);
        const data = list.map((a) => ({ ...adapterJson(a), loaded: loaded.has(refKey(a)) }));
        return { status: 200, json: { object: 'list', data } };
      }),
      route('POST', '/v1/adapters', '/v1/adapters'),
      route('GET', /^\/v1\/adapters\/[^/]+$/, '/v1/adapters/{name}'),
      route('DELETE', /^\/v1\/adapters\/[^/]+$/, '/v1/adapters/{name}'),
      route('GET', '/v1/keys', '/v1/keys'),
      route('POST', '/v1/keys', '/v1/keys'),
      route('DELETE', /^\/v1\/keys\/[^/]+$/, '/v1/keys/{id}'),
    ];
  }

  /** Who a request is: the local admin while no key exists, else its key's principal (401 without one). */
  async #principal(req: IncomingMessage, route: Route): Promise<Principal> {
    if (this.#opts.authorize) return this.#opts.authorize(req, { method: route.method, label: route.label });
    if (!this.#authRequired) {
      // A key created since (over POST /v1/keys, or by vera keys add on the same store) turns keys on.
      const now = Date.now();
      if (now - this.#authCheckedAt > 2000) {
        this.#authCheckedAt = now;
        // A store that cannot answer (a database restarting) has no new key either: serve on as before,
        // so that requests needing nothing of the store (the base) keep being answered.
        this.#authRequired = await this.keys.any().catch(() => false);
      }
      if (!this.#authRequired) return LOCAL_ADMIN;
    }
    const p = await this.keys.authenticate(req.headers.authorization);
    this.#limiter?.check(p.keyId ?? p.tenant);
    return p;
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
    const flight: InFlight = { res, family, timedOut: false };
    const socket = req.socket;
    this.#inFlight.set(socket, flight);
    res.on('close', () => {
      if (this.#inFlight.get(socket) === flight) this.#inFlight.delete(socket);
      if (!res.writableFinished) abort.abort();
    });
    let status = 500;
    try {
      if (!route) {
        if (allowed) throw new HttpError(405, `${method} is not allowed on ${path}`);
        throw new HttpError(
          404,
          `no route ${method} ${path} (GET /health, GET /metrics, GET /v1/models, POST /v1/completions, ` +
            'POST /v1/chat/completions, POST /v1/embeddings, POST /classify, POST /v1/classify, POST /v1/generate, ' +
            'GET/POST /v1/adapters, GET/DELETE /v1/adapters/NAME, GET/POST /v1/keys, DELETE /v1/keys/ID)',
        );
      }
      let principal = LOCAL_ADMIN;
      if (!OPEN_ROUTES.has(route.label) && (route.label !== '/metrics' || this.#opts.metricsAuth)) {
        principal = await this.#principal(req, route);
        if (route.label === '/metrics' && this.authRequired) requireAdmin(principal, 'reading /metrics');
      }
      let body: Promise<Record<string, unknown>> | null = null;
      const ctx: Ctx = {
        method,
        path,
        req,
        signal: abort.signal,
        principal,
        tenant: listTenant(principal),
        body: () => (body ??= readBody(req)),
      };
      status = await write(res, await route.handler(ctx));
    } catch (e) {
      const err = e instanceof StoreError ? toApiError(e) : e;
      status = isAbort(err) && abort.signal.aborted ? 499 : statusOf(err);
      // The request cut off before it was received whole: timed out (answered 408 by #clientError), or
      // the client went away; either way no fault of the server's, and nothing to answer.
      if (flight.timedOut) status = 408;
      else if (!req.complete && (req.destroyed || socket.destroyed)) status = 499;
      if (status === 500)
        this.#opts.log?.(`${method} ${path}: ${err instanceof Error ? (err.stack ?? err.message) : err}`);
      if (!flight.timedOut && !res.headersSent && !res.destroyed)
        sendJson(res, status, errorBody(err, family), errorHeaders(err));
      // A request body nobody read (a refused upload, say) is drained, so the client gets the answer.
      if (!req.complete) req.resume();
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
  // A disconnect cancels the generation, which may end the stream before the loop sees the closed socket.
  if (res.destroyed) return 499;
  res.end();
  return 200;
}

function pick<T extends object, K extends keyof T>(o: T, keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

/** The engine's source of adapter files: the store's bytes of the version asked for. */
function sourceOf(store: AdapterStore): AdapterSource {
  return async (ref: AdapterRef) => {
    let got;
    try {
      got = await store.get(ref.name, { version: ref.version });
    } catch (e) {
      throw new EngineError(statusOf(e), (e as Error).message);
    }
    if (!got) throw new EngineError(404, `adapter "${ref.name}" (version ${ref.version}) is gone from the store`);
    return got.files;
  };
}
