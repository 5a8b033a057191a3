// `vera serve`: many adapters on one base model over HTTP. Every subdirectory of the adapters folder
// holding adapter_config.json is an adapter, named by the folder; it is loaded on its first request and
// unloaded when more than maxLoaded are in memory (least recently used first). Requests that arrive
// together are answered in one mixed-adapter batch (PeftModel.withAdapterNames): with VeRA, whose
// adapters share A and B, a batch of many adapters costs what a batch of one costs.
//
//   GET  /health          {"ok":true, model, task, adapters_loaded, requests, batches}
//   GET  /v1/adapters     {"available":[…], "loaded":[…]}
//   POST /v1/classify     {"adapter"?, "text", "pair"?} or {"adapter"?, "image": base64 PNG/JPEG}
//                                                                     → {"adapter", "labels":[{label,id,score}], "logits"}
//   POST /v1/generate     {"adapter"?, "prompt" | "messages", "max_new_tokens"?, "temperature"?, "top_k"?, "top_p"?, "seed"?,
//                          "stream"?}                                  → {"adapter", "text", "tokens", "finish_reason"}
//                          (with "stream": true, server-sent events: one per token, then that object, then [DONE])
// No "adapter" (or "__base__") runs the base model alone. Errors are {"error": "…"} with a 4xx/5xx status.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { BASE_ADAPTER } from '../adapters/mixed.js';
import { PeftModel } from '../adapters/peft-model.js';
import { noGrad } from '../autograd/graph.js';
import { Decoder } from '../generate/decoder.js';
import { type SamplingOptions, checkSamplingOptions } from '../generate/sampling.js';
import { readJsonFile } from '../io/json.js';
import {
  type ImageProcessorConfig,
  decodeImage,
  loadImageProcessorConfig,
  outputSize,
  preprocessImage,
} from '../io/image.js';
import { type ChatMessage, Tokenizer, createStreamDecoder, hasTokenizerFiles } from '../io/tokenizer.js';
import { asConfigObject } from '../models/config-utils.js';
import type { ModelInputs, PreTrainedModel } from '../models/pretrained.js';
import { tensor } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import { loadBaseFor } from '../adapters/load.js';
import { defaultMaxLength, padIdFor, vocabSizeOf } from '../models/text-inputs.js';
import { checkTokenIds } from '../io/token-ids.js';
import { labelNames, rankLabels } from './labels.js';

export interface ServeOptions {
  /** The base model directory (with its tokenizer). */
  model: string;
  /** A folder whose subfolders are PEFT adapters. */
  adapters: string;
  /** Most requests in one batch (default 16). */
  maxBatch?: number;
  /** How long a request waits for others to share its batch, in ms (default 2). */
  batchWindowMs?: number;
  /** Most adapters held in memory at once (default 64). */
  maxLoaded?: number;
  /** Class names in id order (default: config.json's id2label). */
  labelNames?: string[];
  /** Origin that browsers may call the server from (CORS; '*' for any); default none. */
  cors?: string;
  /** Most requests waiting for a batch; beyond, requests get 503 (default 1024). */
  maxQueued?: number;
  /** Largest new-token count a generate request may ask for (default 512). */
  maxNewTokensLimit?: number;
  /** Storage of the base's linear and embedding weights (default f32; bf16 halves their memory). */
  dtype?: 'f32' | 'bf16';
  log?: (line: string) => void;
}

/** An error with the HTTP status it is answered with. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

// Texts are tokenized (images decoded and preprocessed) when a request arrives, so that a request that
// cannot run is refused alone rather than failing the batch it would have joined.
interface ClassifyJob {
  kind: 'classify';
  adapter: string;
  /** Text: token ids and type ids. */
  ids: number[];
  typeIds: number[];
  /** Image: preprocessed pixel values [3, H, W] (ids then empty), and [H, W]. */
  pixels?: Float32Array;
  size?: [number, number];
}

interface GenerateJob {
  kind: 'generate';
  adapter: string;
  ids: number[];
  maxNewTokens: number;
  /** Greedy unless temperature > 0; a sampled request runs in a batch of its own, so its seed alone decides it. */
  sampling: SamplingOptions & { seed?: number };
  /**
   * Streaming: called with each new token and the text it completes, as the batch produces them, and at
   * the end with token null and any text still held back (the pieces concatenate to the final text).
   */
  onToken?: (token: number | null, text: string) => void;
}

type Job = (ClassifyJob | GenerateJob) & {
  /** Jobs with the same key can share a batch. */
  key: string;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
};

const MAX_BODY = 1 << 20;

/** The adapters under `dir`: subfolder name → path, for each subfolder with an adapter_config.json. */
export function findAdapters(dir: string): Map<string, string> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`${dir} is not a folder of adapters`);
  const out = new Map<string, string>();
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (existsSync(join(path, 'adapter_config.json'))) out.set(name, path);
  }
  return out;
}

export class AdapterServer {
  readonly model: PreTrainedModel;
  /** Null for an image model without tokenizer files. */
  readonly tokenizer: Tokenizer | null;
  #imageConfig: ImageProcessorConfig | null = null;
  #peft: PeftModel<PreTrainedModel> | null = null;
  #available: Map<string, string>;
  /** Loaded adapters, least recently used first. */
  #loaded: string[] = [];
  /** Each loaded adapter's files' modification times, as loaded (stampOf). */
  #stamps = new Map<string, string>();
  #queue: Job[] = [];
  #timer: NodeJS.Timeout | null = null;
  #draining = false;
  #padId: number;
  #maxLength: number | undefined;
  #opts: Required<Omit<ServeOptions, 'labelNames' | 'log' | 'dtype' | 'cors'>> &
    Pick<ServeOptions, 'labelNames' | 'log' | 'dtype' | 'cors'>;
  #server: Server | null = null;
  stats = { requests: 0, batches: 0 };

  constructor(opts: ServeOptions) {
    this.#opts = { maxBatch: 16, batchWindowMs: 2, maxLoaded: 64, maxNewTokensLimit: 512, maxQueued: 1024, ...opts };
    const { maxBatch, maxLoaded, maxQueued } = this.#opts;
    for (const [k, v] of Object.entries({ maxBatch, maxLoaded, maxQueued }))
      if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${v}`);
    this.#available = findAdapters(opts.adapters);
    this.tokenizer = hasTokenizerFiles(opts.model) ? Tokenizer.fromDir(opts.model) : null;
    const configFile = join(opts.model, 'config.json');
    const config = asConfigObject(readJsonFile(configFile), configFile);
    this.#padId = padIdFor(config, this.tokenizer);
    this.#maxLength = defaultMaxLength(config, this.tokenizer);
    // The class comes from the adapters: classification adapters trained on a causal LM need its classifier.
    const first = this.#available.values().next().value ?? null;
    this.model = loadBaseFor(opts.model, first, { padTokenId: this.#padId, dtype: opts.dtype ?? 'f32' }).eval();
    if (this.model.task === 'image-classification') this.#imageConfig = loadImageProcessorConfig(opts.model);
  }

  get task(): string {
    return this.model.task;
  }

  /** Adapters found, and those in memory. */
  adapters(): { available: string[]; loaded: string[] } {
    this.#available = findAdapters(this.#opts.adapters); // adapters added since are listed too
    return { available: [...this.#available.keys()], loaded: [...this.#loaded] };
  }

  /**
   * Classifies one text (with an optional pair) or one image (PNG/JPEG bytes), batched with others that
   * arrive at the same time.
   */
  classify(req: { adapter?: string; text?: string; pair?: string; image?: Uint8Array }): Promise<unknown> {
    if (this.model.task === 'causal-lm')
      throw new HttpError(400, `the model is a ${this.model.architecture} (causal LM): use /v1/generate`);
    if ((req.text === undefined) === (req.image === undefined))
      throw new HttpError(400, 'give exactly one of "text" and "image"');
    const adapter = this.#adapterName(req.adapter);
    if (req.image !== undefined) {
      if (!this.#imageConfig)
        throw new HttpError(
          400,
          `the model is a text classifier (${this.model.architecture}): send "text", not "image"`,
        );
      let image: { pixels: Float32Array; size: [number, number] };
      try {
        const img = decodeImage(req.image, 'the request image');
        const { height, width } = outputSize(img.width, img.height, this.#imageConfig);
        image = { pixels: preprocessImage(img, this.#imageConfig), size: [height, width] };
      } catch (e) {
        throw new HttpError(400, (e as Error).message);
      }
      return this.#enqueue({ kind: 'classify', adapter, ids: [], typeIds: [], ...image });
    }
    if (this.#imageConfig)
      throw new HttpError(
        400,
        `the model is an image classifier (${this.model.architecture}): send "image", not "text"`,
      );
    const e = this.#tokenizer().encode(req.text!, req.pair === undefined ? {} : { pair: req.pair });
    if (e.ids.length === 0) throw new HttpError(400, 'the text has no tokens to classify');
    this.#checkIds(e.ids, 'the text');
    // Longer inputs are cut to the model's positions, as vera train and vera eval cut them.
    const limit = this.#maxLength ?? Infinity;
    return this.#enqueue({
      kind: 'classify',
      adapter,
      ids: e.ids.slice(0, limit),
      typeIds: e.tokenTypeIds.slice(0, limit),
    });
  }

  #tokenizer(): Tokenizer {
    if (!this.tokenizer)
      throw new HttpError(
        400,
        `${this.#opts.model} has no tokenizer files (tokenizer.json, vocab.json + merges.txt or vocab.txt)`,
      );
    return this.tokenizer;
  }

  /**
   * Continues one prompt, or answers a conversation (`messages`, rendered by the tokenizer's chat
   * template with the generation prompt, as `vera generate --chat` does); batched with others.
   */
  generate(req: {
    adapter?: string;
    prompt?: string;
    messages?: ChatMessage[];
    maxNewTokens?: number;
    sampling?: { temperature?: number; topK?: number; topP?: number; seed?: number };
    onToken?: (token: number | null, text: string) => void;
  }): Promise<unknown> {
    if (this.model.task !== 'causal-lm')
      throw new HttpError(400, `the model is a ${this.model.architecture} (${this.model.task}): use /v1/classify`);
    const n = req.maxNewTokens ?? 32;
    if (!Number.isInteger(n) || n < 1 || n > this.#opts.maxNewTokensLimit)
      throw new HttpError(400, `max_new_tokens must be an integer from 1 to ${this.#opts.maxNewTokensLimit}, got ${n}`);
    const sampling = { ...req.sampling, doSample: (req.sampling?.temperature ?? 0) > 0 };
    try {
      checkSamplingOptions(sampling);
    } catch (e) {
      throw new HttpError(400, (e as Error).message);
    }
    const adapter = this.#adapterName(req.adapter);
    if ((req.prompt === undefined) === (req.messages === undefined))
      throw new HttpError(400, 'give exactly one of "prompt" and "messages"');
    const tokenizer = this.#tokenizer();
    let ids: number[];
    if (req.messages !== undefined) {
      try {
        const text = tokenizer.applyChatTemplate(req.messages, { addGenerationPrompt: true });
        ids = tokenizer.encode(text, { addSpecialTokens: false }).ids;
      } catch (e) {
        throw new HttpError(400, `"messages": ${(e as Error).message}`);
      }
    } else ids = tokenizer.encode(req.prompt!).ids;
    if (ids.length === 0) throw new HttpError(400, 'the prompt has no tokens to continue');
    this.#checkIds(ids, 'the prompt');
    // Learned position embeddings (GPT-2) end at n_positions; rotary ones have no table to run off.
    const positions = this.model.modelType === 'gpt2' ? Number(this.model.config['n_positions']) : Infinity;
    if (ids.length + n > positions)
      throw new HttpError(
        400,
        `the prompt's ${ids.length} tokens and max_new_tokens ${n} exceed the model's ${positions} positions`,
      );
    return this.#enqueue({
      kind: 'generate',
      adapter,
      ids,
      maxNewTokens: n,
      sampling,
      ...(req.onToken ? { onToken: req.onToken } : {}),
    });
  }

  // Ids are checked where the tokenizer makes them: a kernel on a device would report a bad one late.
  #checkIds(ids: readonly number[], what: string): void {
    try {
      checkTokenIds(ids, vocabSizeOf(this.model.config), what);
    } catch (e) {
      throw new HttpError(422, (e as Error).message);
    }
  }

  #adapterName(name: string | undefined): string {
    if (name === undefined || name === BASE_ADAPTER) return BASE_ADAPTER;
    // An adapter copied into the folder while serving is found on its first request.
    if (!this.#available.has(name)) this.#available = findAdapters(this.#opts.adapters);
    if (!this.#available.has(name))
      throw new HttpError(
        404,
        `no adapter "${name}" in ${this.#opts.adapters} (available: ${[...this.#available.keys()].join(', ') || 'none'})`,
      );
    return name;
  }

  #enqueue(job: ClassifyJob | GenerateJob): Promise<unknown> {
    // Backpressure: past maxQueued waiting requests, new ones are turned away rather than piling up.
    if (this.#queue.length >= this.#opts.maxQueued)
      throw new HttpError(503, `the server is busy (${this.#queue.length} requests waiting); retry later`);
    this.stats.requests++;
    return new Promise((resolve, reject) => {
      this.#queue.push({ ...job, key: batchKey(job), resolve, reject });
      if (this.#timer === null) this.#timer = setTimeout(() => void this.#drain(), this.#opts.batchWindowMs);
    });
  }

  /**
   * Runs the queue batch by batch: the first job and the jobs after it that can share its batch. One
   * drain at a time; a generation yields to the event loop between its steps (so streamed tokens go out),
   * and requests arriving meanwhile wait for the next batch.
   */
  async #drain(): Promise<void> {
    this.#timer = null;
    if (this.#draining) return;
    this.#draining = true;
    try {
      await this.#drainQueue();
    } finally {
      this.#draining = false;
    }
  }

  async #drainQueue(): Promise<void> {
    while (this.#queue.length > 0) {
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
    this.stats.batches++;
    // An adapter that cannot be loaded fails its own requests only.
    const ok = batch.filter((j) => {
      try {
        this.#ensureLoaded(j.adapter, batch);
        return true;
      } catch (e) {
        j.reject(e instanceof HttpError ? e : new HttpError(422, `adapter "${j.adapter}": ${(e as Error).message}`));
        return false;
      }
    });
    if (ok.length === 0) return;
    try {
      const results =
        ok[0]!.kind === 'classify'
          ? await this.#classifyBatch(ok as ClassifyJob[])
          : await this.#generateBatch(ok as GenerateJob[]);
      ok.forEach((j, i) => j.resolve(results[i]));
    } catch (e) {
      for (const j of ok) j.reject(e);
    }
  }

  #ensureLoaded(name: string, batch: readonly Job[]): void {
    if (name === BASE_ADAPTER) return;
    const dir = this.#available.get(name)!;
    const at = this.#loaded.indexOf(name);
    if (at >= 0) {
      this.#loaded.splice(at, 1);
      if (this.#stamps.get(name) === stampOf(dir)) {
        this.#loaded.push(name);
        return;
      }
      // Changed on disk (retrained, say): the new files replace the loaded adapter.
      this.#peft!.deleteAdapter(name);
      this.#stamps.delete(name);
      this.#opts.log?.(`adapter ${name} changed on disk; reloading`);
    }
    const stamp = stampOf(dir);
    if (this.#peft === null) this.#peft = PeftModel.fromPretrained(this.model, dir, { adapterName: name });
    else this.#peft.loadAdapter(dir, name);
    this.#loaded.push(name);
    this.#stamps.set(name, stamp);
    this.#opts.log?.(`loaded adapter ${name} from ${dir}`);
    // Over the limit: unload the least recently used adapters that this batch does not need.
    const needed = new Set(batch.map((j) => j.adapter));
    for (const old of [...this.#loaded]) {
      if (this.#loaded.length <= this.#opts.maxLoaded) break;
      if (needed.has(old)) continue;
      this.#peft.deleteAdapter(old);
      this.#loaded.splice(this.#loaded.indexOf(old), 1);
      this.#stamps.delete(old);
      this.#opts.log?.(`unloaded adapter ${old}`);
    }
  }

  /** Runs fn with each row on its job's adapter (the base alone when no adapter is loaded yet). */
  #withAdapters<T>(jobs: readonly { adapter: string }[], fn: () => T): T {
    if (this.#peft === null) return fn();
    return this.#peft.withAdapterNames(
      jobs.map((j) => j.adapter),
      fn,
    );
  }

  async #classifyBatch(jobs: ClassifyJob[]): Promise<unknown[]> {
    // The forward runs in a scope; its result, read asynchronously, lets the event loop run meanwhile.
    const out = noGrad(() =>
      scope(() => this.#withAdapters(jobs, () => this.model.forward(this.#classifyInputs(jobs)))),
    );
    const read = out.data();
    out.dispose();
    const logits = (await read) as Float32Array;
    const n = logits.length / jobs.length;
    const names = this.#opts.labelNames ?? labelNames(this.model.config, n);
    return jobs.map((j, i) => {
      const row = Array.from(logits.subarray(i * n, (i + 1) * n));
      return { adapter: j.adapter, labels: rankLabels(row, names), logits: row };
    });
  }

  /** The batch's model inputs: stacked pixel values, or right-padded ids with their mask (and BERT's types). */
  #classifyInputs(jobs: ClassifyJob[]): ModelInputs {
    const backend = this.model.parameters()[0]!.backend;
    const first = jobs[0]!;
    if (first.pixels && first.size) {
      // The batch key keeps one image size per batch.
      const one = first.pixels.length;
      const all = new Float32Array(one * jobs.length);
      jobs.forEach((j, i) => all.set(j.pixels!, i * one));
      return { pixelValues: tensor(all, { shape: [jobs.length, 3, ...first.size], backend }) };
    }
    const rows = jobs.map((j) => ({ ids: j.ids, types: j.typeIds }));
    const width = Math.max(...rows.map((r) => r.ids.length));
    const padded = (pick: (r: (typeof rows)[number]) => number[], fill: number) =>
      Int32Array.from(rows.flatMap((r) => [...pick(r), ...new Array<number>(width - pick(r).length).fill(fill)]));
    const i32 = (values: Int32Array) => tensor(values, { dtype: 'i32', shape: [rows.length, width], backend });
    return {
      inputIds: i32(padded((r) => r.ids, this.#padId)),
      attentionMask: i32(padded((r) => r.ids.map(() => 1), 0)),
      // Only BERT takes token types (RoBERTa has one type; GPT-2 would add them to its embeddings).
      ...(this.model.modelType === 'bert' ? { tokenTypeIds: i32(padded((r) => r.types, 0)) } : {}),
    };
  }

  async #generateBatch(jobs: GenerateJob[]): Promise<unknown[]> {
    const eos = this.model.config['eos_token_id'];
    const stop = new Set(eos === undefined || eos === null ? [] : [eos].flat());
    const decoder = new Decoder(
      this.model,
      jobs.map((j) => j.ids),
      {
        ...jobs[0]!.sampling,
        maxNewTokens: Math.max(...jobs.map((j) => j.maxNewTokens)),
        // Left padding of shorter prompts: an id the model embeds (config ids may lie outside its vocabulary).
        padTokenId: this.#padId,
      },
    );
    const tokens = jobs.map((): number[] => []);
    const tokenizer = this.#tokenizer();
    const decoders = jobs.map((j) => (j.onToken ? createStreamDecoder(tokenizer) : null));
    try {
      // Each step's forward runs with the rows on their adapters; its ids are read asynchronously, and the
      // event loop runs between steps.
      while (!decoder.finished) {
        const next = await decoder.stepAsync((forward) => this.#withAdapters(jobs, forward));
        next.tokens.forEach((t, r) => {
          const job = jobs[r]!;
          if (t === null || tokens[r]!.length >= job.maxNewTokens) return;
          tokens[r]!.push(t);
          job.onToken?.(t, decoders[r]!.push(t));
        });
        if (jobs.every((j, r) => tokens[r]!.length >= j.maxNewTokens || stop.has(tokens[r]!.at(-1)!))) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      decoder.dispose();
    }
    return jobs.map((j, r) => {
      const row = tokens[r]!;
      const text = tokenizer.decode(row, { skipSpecialTokens: true, cleanUpTokenizationSpaces: false });
      if (j.onToken) {
        const rest = decoders[r]!.flush();
        if (rest) j.onToken(null, rest);
      }
      return {
        adapter: j.adapter,
        text,
        tokens: row,
        finish_reason: row.length > 0 && stop.has(row.at(-1)!) ? 'stop' : 'length',
      };
    });
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

  close(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  /**
   * A generation streamed as server-sent events: one `data: {"token","text"}` event per token (text: the
   * new piece; a last event may carry held-back text with token null), then the full answer as the
   * non-streamed reply gives it, then `data: [DONE]`. Errors found before the first token are plain
   * JSON errors; later ones arrive as a `data: {"error"}` event.
   */
  async #stream(res: ServerResponse, request: Parameters<AdapterServer['generate']>[0]): Promise<void> {
    const event = (data: unknown) => {
      if (!res.headersSent) res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      if (!res.writableEnded && !res.destroyed)
        res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
    };
    const answer = this.generate({ ...request, onToken: (token, text) => event({ token, text }) });
    try {
      event(await answer);
    } catch (e) {
      if (!res.headersSent) throw e; // answered as a JSON error by #handle
      event({ error: e instanceof Error ? e.message : String(e) });
    }
    event('[DONE]');
    res.end();
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Browsers on other origins (a web page calling the server) need CORS, when allowed (--cors).
    if (this.#opts.cors) {
      res.setHeader('access-control-allow-origin', this.#opts.cors);
      res.setHeader('access-control-allow-methods', 'GET, POST, OPTIONS');
      res.setHeader('access-control-allow-headers', 'content-type');
      if (req.method === 'OPTIONS') {
        res.writeHead(204).end();
        return;
      }
    }
    const send = (status: number, body: unknown) => {
      const text = `${JSON.stringify(body)}\n`;
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    try {
      const url = (req.url ?? '/').split('?')[0];
      const route = `${req.method} ${url}`;
      if (route === 'GET /health')
        return send(200, {
          ok: true,
          model: this.model.architecture,
          task: this.task,
          adapters_loaded: this.#loaded.length,
          queued: this.#queue.length,
          ...this.stats,
        });
      if (route === 'GET /v1/adapters') return send(200, this.adapters());
      if (route === 'POST /v1/classify') {
        const body = await readBody(req);
        return send(
          200,
          await this.classify({
            ...optionalString(body, 'adapter'),
            ...optionalString(body, 'text'),
            ...optionalString(body, 'pair'),
            ...optionalImage(body),
          }),
        );
      }
      if (route === 'POST /v1/generate') {
        const body = await readBody(req);
        const sampling = {
          ...optionalNumber(body, 'temperature', 'temperature'),
          ...optionalNumber(body, 'top_k', 'topK'),
          ...optionalNumber(body, 'top_p', 'topP'),
          ...optionalNumber(body, 'seed', 'seed'),
        };
        const request = {
          ...optionalString(body, 'adapter'),
          ...optionalString(body, 'prompt'),
          ...optionalMessages(body),
          ...optionalNumber(body, 'max_new_tokens', 'maxNewTokens'),
          sampling,
        };
        if (body['stream'] !== undefined && typeof body['stream'] !== 'boolean')
          throw new HttpError(400, `"stream" must be true or false, got ${JSON.stringify(body['stream'])}`);
        if (body['stream'] !== true) return send(200, await this.generate(request));
        return await this.#stream(res, request);
      }
      if (['/health', '/v1/adapters', '/v1/classify', '/v1/generate'].includes(url ?? ''))
        throw new HttpError(405, `${req.method} is not allowed on ${url}`);
      throw new HttpError(
        404,
        `no route ${route} (GET /health, GET /v1/adapters, POST /v1/classify, POST /v1/generate)`,
      );
    } catch (e) {
      const status = e instanceof HttpError ? e.status : 500;
      send(status, { error: e instanceof Error ? e.message : String(e) });
    }
  }
}

let unique = 0;

/** When an adapter's files last changed: their modification times (missing files count as 0). */
function stampOf(dir: string): string {
  return ['adapter_config.json', 'adapter_model.safetensors']
    .map((f) => {
      try {
        return statSync(join(dir, f)).mtimeMs;
      } catch {
        return 0;
      }
    })
    .join(' ');
}

/** Jobs that can share a batch: every classification; greedy generations; a sampled one shares with none. */
function batchKey(j: ClassifyJob | GenerateJob): string {
  if (j.kind === 'classify') return j.size ? `classify-image ${j.size.join('x')}` : 'classify';
  return j.sampling.doSample ? `sampled ${unique++}` : 'greedy';
}

function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c); // beyond: read on but keep nothing, and answer 413 at the end
    });
    req.on('end', () => {
      if (size > MAX_BODY) return reject(new HttpError(413, `the request body is over ${MAX_BODY} bytes`));
      let body: unknown;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        return reject(new HttpError(400, `the body is not JSON: ${(e as Error).message}`));
      }
      if (body === null || typeof body !== 'object' || Array.isArray(body))
        return reject(new HttpError(400, 'the body must be a JSON object'));
      resolve(body as Record<string, unknown>);
    });
    req.on('error', reject);
  });
}

function requiredString(body: Record<string, unknown>, key: string): string {
  const v = body[key];
  if (typeof v !== 'string')
    throw new HttpError(400, `"${key}" must be a string, got ${JSON.stringify(v) ?? 'nothing'}`);
  return v;
}

function optionalString<K extends string>(body: Record<string, unknown>, key: K): { [P in K]?: string } {
  if (body[key] === undefined || body[key] === null) return {};
  return { [key]: requiredString(body, key) } as { [P in K]?: string };
}

/** "messages": a conversation, a list of {"role", "content"} strings. */
function optionalMessages(body: Record<string, unknown>): { messages?: ChatMessage[] } {
  const v = body['messages'];
  if (v === undefined || v === null) return {};
  const ok = (m: unknown): m is ChatMessage =>
    m !== null &&
    typeof m === 'object' &&
    typeof (m as ChatMessage).role === 'string' &&
    typeof (m as ChatMessage).content === 'string';
  if (!Array.isArray(v) || v.length === 0 || !v.every(ok))
    throw new HttpError(400, '"messages" must be a non-empty list of {"role": string, "content": string}');
  return { messages: v };
}

/** "image": a PNG or JPEG file as base64 (within the body limit). */
function optionalImage(body: Record<string, unknown>): { image?: Uint8Array } {
  const v = optionalString(body, 'image').image;
  if (v === undefined) return {};
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(v.replace(/\s+/g, '')))
    throw new HttpError(400, '"image" must be a base64 string of a PNG or JPEG file');
  return { image: new Uint8Array(Buffer.from(v, 'base64')) };
}

function optionalNumber<K extends string>(body: Record<string, unknown>, key: string, as: K): { [P in K]?: number } {
  const v = body[key];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new HttpError(400, `"${key}" must be a number, got ${JSON.stringify(v)}`);
  return { [as]: v } as { [P in K]?: number };
}
