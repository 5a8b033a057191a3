// The contract between the HTTP side of `vera serve` (routes, keys, the store: the main thread) and the
// model side (the engine: model, loaded adapters, batching; in a worker thread, so the event loop that
// accepts connections, /health and /metrics never waits on a forward). Requests cross it as token ids:
// tokenizing, chat templates, stop strings and detokenizing stay on the HTTP side, which has the
// tokenizer; the engine sees ids, an adapter reference and sampling parameters.
//
// An adapter is named with its store version: the engine keeps (name, version) loaded, so a re-upload
// (a new version) is loaded fresh while requests already running finish on the version they started
// with. The engine gets an adapter's files from the AdapterSource it was made with.

/** The adapter a request runs with: BASE_ADAPTER (adapters/mixed.ts) for the base model alone. */
export interface AdapterRef {
  name: string;
  /** The store's version of it; 0 for the base. */
  version: number;
}

/** Where the engine gets the files of an adapter it has not loaded (from the store, on the main thread). */
export type AdapterSource = (
  ref: AdapterRef,
) => Promise<{ 'adapter_config.json': Uint8Array; 'adapter_model.safetensors': Uint8Array }>;

export interface GenerateRequest {
  adapter: AdapterRef;
  /** The prompt's token ids (checked against the vocabulary by the HTTP side). */
  ids: number[];
  maxNewTokens: number;
  /** Greedy when absent or 0. */
  temperature?: number;
  topP?: number;
  topK?: number;
  /** Seed of this request's own sampling stream: the same seed gives the same tokens in any batch. */
  seed?: number;
  /** A token that ends the sequence (included in the tokens, finish reason 'stop'); default the config's eos. */
  stopTokenIds?: number[];
}

export type FinishReason = 'stop' | 'length' | 'cancelled';

export interface GenerateResult {
  /** The new tokens (a stop token included). */
  tokens: number[];
  finishReason: FinishReason;
  /** Prompt tokens, as counted for `usage`. */
  promptTokens: number;
}

export interface ClassifyRequest {
  adapter: AdapterRef;
  /** Text: token ids and type ids (both empty for an image). */
  ids: number[];
  typeIds: number[];
  /** Image: preprocessed pixel values [3, H, W], and [H, W]. */
  pixels?: Float32Array;
  size?: [number, number];
}

export interface ClassifyResult {
  /** The classifier's logits of this input, in label-id order. */
  logits: number[];
}

export interface EmbedRequest {
  adapter: AdapterRef;
  ids: number[];
  typeIds: number[];
}

export interface EmbedResult {
  /** The pooled last hidden state (pooling.ts), scaled to unit length. */
  embedding: Float32Array;
}

export interface EngineStats {
  /** Requests accepted and not yet finished, by state. */
  waiting: number;
  running: number;
  /** Rows of the last decode step. */
  batchSize: number;
  /** Adapters in memory, as name@version. */
  loaded: string[];
  /** Totals since start. */
  requests: number;
  /** Classification and embedding batches run. */
  batches: number;
  steps: number;
  generatedTokens: number;
}

/** Options every call may take. */
export interface CallOptions {
  /** Aborting cancels the request: it leaves its batch at the next step; the promise rejects with an AbortError. */
  signal?: AbortSignal;
}

export interface Engine {
  /** What the model is: task ('causal-lm', 'sequence-classification', …), architecture, model type, config. */
  readonly info: { task: string; architecture: string; modelType: string; config: Record<string, unknown> };
  /** Streams each new token to onToken as its step finishes, then resolves with all of them. */
  generate(req: GenerateRequest, opts?: CallOptions & { onToken?: (token: number) => void }): Promise<GenerateResult>;
  classify(req: ClassifyRequest, opts?: CallOptions): Promise<ClassifyResult>;
  embed(req: EmbedRequest, opts?: CallOptions): Promise<EmbedResult>;
  /** Drops an adapter's loaded versions older than `keepVersion` once no request runs on them (after a re-upload or delete). */
  evict(name: string, keepVersion?: number): void;
  stats(): EngineStats;
  /** Finishes running requests, rejects waiting ones, frees the model (and ends the worker). */
  close(): Promise<void>;
}

/**
 * How an engine's request fails: a message and the HTTP status the server answers with (400 a request
 * the model cannot run, 404/5xx as the AdapterSource said, 422 adapter files that do not load, 499 a
 * cancelled request, with name 'AbortError', 503 a full queue or a closed engine, 500 anything else).
 * Errors cross the worker boundary as this class, with message, status and name.
 */
export class EngineError extends Error {
  constructor(
    readonly status: number,
    message: string,
    name?: string,
  ) {
    super(message);
    this.name = name ?? (status === 499 ? 'AbortError' : 'EngineError');
  }
}

/** The rejection of a cancelled request. */
export function abortError(): EngineError {
  return new EngineError(499, 'the request was cancelled', 'AbortError');
}
