// `vera serve`: many PEFT adapters on one base model over HTTP, with OpenAI's API (the adapter in
// `model`) and vera's own routes; requests that arrive together are answered in one mixed-adapter batch
// (src/serve/server.ts dispatches, src/serve/routes/ has the routes).

import { parseArgs } from './common.js'; // node:util's, taking both spellings of every flag
import { AdapterServer } from '../serve/server.js';
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

export const SERVE_USAGE = `Usage: vera serve --model DIR --adapters DIR [options]

Serves every adapter in a folder (each subfolder with adapter_config.json, named by the folder) from one
base model. An adapter is loaded on its first request; requests that arrive together run as one batch in
which each row uses its own adapter (with VeRA, a batch of many adapters costs what a batch of one does).

OpenAI-compatible (the adapter's name, or the base's, in "model"; errors as OpenAI's):
  GET  /v1/models              the base and every adapter (parent: the base)
  POST /v1/completions         prompt; max_tokens, temperature, top_p, top_k, stop, seed, n, stream
  POST /v1/chat/completions    messages (the chat template); the same parameters
  POST /v1/embeddings          encoders: input texts or ids; encoding_format float or base64
  POST /classify               vLLM's shape: {"model", "input"} -> data[{index, label, probs, num_classes}]
vera's own:
  GET  /health        status and counters
  GET  /metrics       Prometheus metrics
  GET  /v1/adapters   adapters available and loaded
  POST /v1/classify   {"adapter"?, "text", "pair"?} or {"adapter"?, "image": base64 PNG/JPEG}
                      → {"adapter", "labels":[{"label","id","score"}], "logits"}
  POST /v1/generate   {"adapter"?, "prompt" or "messages" (chat template), "max_new_tokens"?, "temperature"?,
                       "top_k"?, "top_p"?, "seed"?, "stream"?}
                      → {"adapter", "text", "tokens", "finish_reason"}; with "stream": true, server-sent
                      events {"token","text"} as tokens come, then that object, then [DONE]
Without "adapter" (or with "__base__") a request runs the base model alone.

Options:
  --model DIR            The base model directory (with its tokenizer)
  --adapters DIR         The folder of adapters
  --port N               Port (default 8080; 0 picks a free one)
  --host ADDR            Address to listen on (default 127.0.0.1)
  --model-name ID        The base's id in /v1/models and "model" (default: the model folder's name)
  --max-batch N          Most requests in one batch (default 16)
  --batch-window-ms N    How long a request waits for others to join its batch (default 2)
  --max-loaded N         Most adapters in memory; the least recently used are unloaded (default 64)
  --max-queued N         Most requests waiting for a batch; more get 503 (default 1024)
  --cors ORIGIN          Let browsers on ORIGIN call the server ('*': any origin; default: none)
  --label_names A,B      Class names in id order (default: config.json's id2label)
${dtypeHelp(25)}  --verbose              Log adapter loads on stderr
${backendHelp(25)}${deviceHelp(25)}${threadsHelp(25)}`;

export async function serveCommand(args: string[]): Promise<number> {
  const s = { type: 'string' } as const;
  const { values } = usage('serve', () =>
    parseArgs({
      args,
      options: {
        model: s,
        adapters: s,
        port: s,
        host: s,
        'model-name': s,
        'max-batch': s,
        'batch-window-ms': s,
        'max-loaded': s,
        'max-queued': s,
        cors: s,
        label_names: s,
        dtype: s,
        verbose: { type: 'boolean', default: false },
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
  for (const key of ['model', 'adapters'] as const)
    if (!values[key]) throw new Error(`--${key} is required (see vera serve --help)`);
  selectBackend(values.backend, values.threads, values.device);
  const log = (line: string) => process.stderr.write(`vera serve: ${line}\n`);
  const server = new AdapterServer({
    model: values.model!,
    adapters: values.adapters!,
    ...(values['max-batch'] === undefined ? {} : { maxBatch: intFlag('max-batch', values['max-batch'], 1) }),
    ...(values['batch-window-ms'] === undefined
      ? {}
      : { batchWindowMs: intFlag('batch-window-ms', values['batch-window-ms'], 0) }),
    ...(values['max-loaded'] === undefined ? {} : { maxLoaded: intFlag('max-loaded', values['max-loaded'], 1) }),
    ...(values['max-queued'] === undefined ? {} : { maxQueued: intFlag('max-queued', values['max-queued'], 1) }),
    ...(values.label_names === undefined ? {} : { labelNames: values.label_names.split(',').map((x) => x.trim()) }),
    ...(values.cors === undefined ? {} : { cors: values.cors }),
    ...(values['model-name'] === undefined ? {} : { modelName: values['model-name'] }),
    ...(values.dtype === undefined ? {} : { dtype: dtypeFlag(values.dtype) }),
    log: progressLogger(values.verbose),
  });
  const port = await server.listen(values.port === undefined ? 8080 : intFlag('port', values.port, 0), values.host);
  const { available } = await server.adapters();
  log(
    `${server.model.architecture} (${server.task}) with ${available.length} adapters on http://${values.host ?? '127.0.0.1'}:${port}`,
  );
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
