// `vera serve`: many PEFT adapters on one base model over HTTP, with OpenAI's API (the adapter in
// `model`) and vera's own routes, adapters from a store (a folder, SQLite or PostgreSQL), the model in a
// worker thread with continuous batching, API keys with per-tenant adapters (src/serve/server.ts
// dispatches, src/serve/routes/ has the routes, src/serve/auth/ the keys, src/serve/store/ the stores).

import { parseArgs } from './common.js'; // node:util's, taking both spellings of every flag
import { AdapterServer } from '../serve/server.js';
import { defaultBackend } from '../backends/registry.js';
import {
  backendHelp,
  deviceHelp,
  dtypeFlag,
  dtypeHelp,
  intFlag,
  parseCommandArgs as usage,
  progressLogger,
  selectBackend,
  threadsHelp,
} from './common.js';

export const SERVE_USAGE = `Usage: vera serve --model DIR --store SPEC [options]
       vera serve --model DIR --adapters DIR [options]

Serves every adapter of a store from one base model. SPEC is a folder of adapters (each subfolder with
adapter_config.json, named by the folder; --adapters DIR is the same), sqlite:FILE or postgres://...
(several servers may share one). An adapter is loaded on its first request; generation batches
continuously (a request joins the running batch at the next step, each row on its own adapter and
sampling parameters), in a worker thread, so /health and /metrics answer while it works. A re-upload is
a new version: requests running finish on the old one, new ones get the new one.

Keys and tenants: once the store holds an API key (vera keys add, POST /v1/keys, or VERA_ADMIN_KEY,
which is stored as an admin key), every route but /health and /metrics needs "Authorization: Bearer
KEY". A tenant's key sees and uses its own adapters and those without an owner (another tenant's
answer 404, as absent ones do); an admin key manages every adapter and key. Without any key the server
is unauthenticated and listens on loopback only (--insecure-no-auth overrides that).

OpenAI-compatible (the adapter's name, or the base's, in "model"; errors as OpenAI's):
  GET  /v1/models              the base and every adapter the key may use (parent: the base)
  POST /v1/completions         prompt; max_tokens, temperature, top_p, top_k, stop, seed, n, stream
  POST /v1/chat/completions    messages (the chat template); the same parameters
  POST /v1/embeddings          encoders: input texts or ids; encoding_format float or base64
  POST /classify               vLLM's shape: {"model", "input"} -> data[{index, label, probs, num_classes}]
Adapters and keys:
  GET  /v1/adapters            {"object": "list", "data": [{id, version, owner, bytes, created, loaded}]}
  POST /v1/adapters            multipart: name, adapter_config.json, adapter_model.safetensors (owner:
                               admins only); validated against the base, stored as a new version
  GET|DELETE /v1/adapters/NAME one adapter (GET ?version=N: the previous version)
  GET|POST /v1/keys, DELETE /v1/keys/ID   admin keys only: {"tenant", "role"?} -> the key, shown once
vera's own:
  GET  /health        status and counters (never needs a key)
  GET  /metrics       Prometheus metrics (an admin key with --metrics-auth)
  POST /v1/classify   {"adapter"?, "text", "pair"?} or {"adapter"?, "image": base64 PNG/JPEG}
                      → {"adapter", "labels":[{"label","id","score"}], "logits"}
  POST /v1/generate   {"adapter"?, "prompt" or "messages" (chat template), "max_new_tokens"?, "temperature"?,
                       "top_k"?, "top_p"?, "seed"?, "stream"?}
                      → {"adapter", "text", "tokens", "finish_reason"}; with "stream": true, server-sent
                      events {"token","text"} as tokens come, then that object, then [DONE]
Without "adapter" (or with "__base__") a request runs the base model alone.

Options:
  --model DIR            The base model directory (with its tokenizer)
  --store SPEC           The adapter store: a folder, sqlite:FILE or postgres://... (default: $VERA_STORE)
  --adapters DIR         A folder of adapters (a folder store that must exist)
  --port N               Port (default 8080; 0 picks a free one)
  --host ADDR            Address to listen on (default 127.0.0.1; another needs an API key in the store)
  --insecure-no-auth     Listen on --host without any API key (every caller may change every adapter)
  --rate-limit N         Requests per minute per key; beyond, 429 with Retry-After (default: no limit)
  --rate-burst N         Requests a key may send at once within --rate-limit (default: --rate-limit)
  --metrics-auth         GET /metrics needs an admin key too (default: open, as /health)
  --model-name ID        The base's id in /v1/models and "model" (default: the model folder's name)
  --max-batch N          Most rows of a generation batch, requests of a classification batch (default 16)
  --batch-window-ms N    How long a classification request waits for others to join its batch (default 2)
  --batching MODE        continuous (default) or static (a batch runs to its end; for comparison)
  --engine WHERE         worker (default: the model in a worker thread) or local (on the main thread)
  --max-loaded N         Most adapters in memory; the least recently used are unloaded (default 64)
  --max-queued N         Most requests waiting; more get 503 (default 1024)
  --cors ORIGIN          Let browsers on ORIGIN call the server ('*': any origin; default: none)
  --headers-timeout-ms N Most ms to receive a request's headers (also a connection that sends nothing);
                         beyond, 408 and the connection is closed (default 10000)
  --request-timeout-ms N Most ms to receive a whole request, headers and body (an upload); beyond, 408
                         and the connection is closed (default 300000)
  --keep-alive-timeout-ms N  How long an idle keep-alive connection is kept (default 5000)
  --label_names A,B      Class names in id order (default: config.json's id2label)
${dtypeHelp(25)}  --verbose              Log adapter loads on stderr
${backendHelp(25)}${deviceHelp(25)}${threadsHelp(25)}`;

const oneOf = <T extends string>(flag: string, value: string, choices: readonly T[]): T => {
  if (!(choices as readonly string[]).includes(value))
    throw new Error(`--${flag} must be ${choices.join(' or ')}, got "${value}"`);
  return value as T;
};

export async function serveCommand(args: string[]): Promise<number> {
  const s = { type: 'string' } as const;
  const flag = { type: 'boolean', default: false } as const;
  const { values } = usage('serve', () =>
    parseArgs({
      args,
      options: {
        model: s,
        store: s,
        adapters: s,
        port: s,
        host: s,
        'insecure-no-auth': flag,
        'rate-limit': s,
        'rate-burst': s,
        'metrics-auth': flag,
        'model-name': s,
        'max-batch': s,
        'batch-window-ms': s,
        batching: s,
        engine: s,
        'max-loaded': s,
        'max-queued': s,
        cors: s,
        'headers-timeout-ms': s,
        'request-timeout-ms': s,
        'keep-alive-timeout-ms': s,
        label_names: s,
        dtype: s,
        verbose: flag,
        backend: s,
        threads: s,
        device: s,
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }),
  );
  if (values.help) {
    process.stdout.write(SERVE_USAGE);
    return 0;
  }
  if (!values.model) throw new Error('--model is required (see vera serve --help)');
  const store = values.store ?? (values.adapters === undefined ? process.env['VERA_STORE'] : undefined);
  if (values.store !== undefined && values.adapters !== undefined)
    throw new Error('give --store or --adapters, not both (--adapters DIR is --store DIR for a folder that exists)');
  if (!store && values.adapters === undefined)
    throw new Error(
      '--store SPEC (a folder, sqlite:FILE or postgres://...) or --adapters DIR is required (see vera serve --help)',
    );
  const host = values.host ?? '127.0.0.1';
  const port = values.port === undefined ? 8080 : intFlag('port', values.port, 0);
  const rate = values['rate-limit'] === undefined ? undefined : intFlag('rate-limit', values['rate-limit'], 1);
  if (values['rate-burst'] !== undefined && rate === undefined) throw new Error('--rate-burst needs --rate-limit');
  const burst = values['rate-burst'] === undefined ? undefined : intFlag('rate-burst', values['rate-burst'], 1);
  const opts = {
    ...(values['max-batch'] === undefined ? {} : { maxBatch: intFlag('max-batch', values['max-batch'], 1) }),
    ...(values['batch-window-ms'] === undefined
      ? {}
      : { batchWindowMs: intFlag('batch-window-ms', values['batch-window-ms'], 0) }),
    ...(values['max-loaded'] === undefined ? {} : { maxLoaded: intFlag('max-loaded', values['max-loaded'], 1) }),
    ...(values['max-queued'] === undefined ? {} : { maxQueued: intFlag('max-queued', values['max-queued'], 1) }),
    ...(values.batching === undefined
      ? {}
      : { batching: oneOf('batching', values.batching, ['continuous', 'static'] as const) }),
    ...(values.engine === undefined ? {} : { engine: oneOf('engine', values.engine, ['worker', 'local'] as const) }),
    ...(values.label_names === undefined ? {} : { labelNames: values.label_names.split(',').map((x) => x.trim()) }),
    ...(values.cors === undefined ? {} : { cors: values.cors }),
    ...(values['headers-timeout-ms'] === undefined
      ? {}
      : { headersTimeoutMs: intFlag('headers-timeout-ms', values['headers-timeout-ms'], 1) }),
    ...(values['request-timeout-ms'] === undefined
      ? {}
      : { requestTimeoutMs: intFlag('request-timeout-ms', values['request-timeout-ms'], 1) }),
    ...(values['keep-alive-timeout-ms'] === undefined
      ? {}
      : { keepAliveTimeoutMs: intFlag('keep-alive-timeout-ms', values['keep-alive-timeout-ms'], 1) }),
    ...(values['model-name'] === undefined ? {} : { modelName: values['model-name'] }),
    ...(values.dtype === undefined ? {} : { dtype: dtypeFlag(values.dtype) }),
    ...(rate === undefined ? {} : { rateLimit: { perMinute: rate, ...(burst === undefined ? {} : { burst }) } }),
  };
  selectBackend(values.backend, values.threads, values.device);
  const log = (line: string) => process.stderr.write(`vera serve: ${line}\n`);
  const server = await AdapterServer.open({
    model: values.model,
    ...(store ? { store } : { adapters: values.adapters! }),
    ...opts,
    backend: defaultBackend().name,
    metricsAuth: values['metrics-auth'],
    insecureNoAuth: values['insecure-no-auth'],
    log: progressLogger(values.verbose),
  });
  let listening: number;
  try {
    listening = await server.listen(port, host);
  } catch (e) {
    await server.close();
    throw e;
  }
  const { available } = await server.adapters();
  const info = server.engine.info;
  if (!server.authRequired)
    log(
      `unauthenticated: ${server.store.spec} has no API keys, so every caller is the admin` +
        (values['insecure-no-auth'] ? ` (--insecure-no-auth: on ${host})` : '; listening on loopback only'),
    );
  log(`${info.architecture} (${info.task}) with ${available.length} adapters on http://${host}:${listening}`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      log('stopping');
      void server.close().then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}
