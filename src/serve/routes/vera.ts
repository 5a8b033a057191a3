// vera's own routes (errors as {"error": "…"}):
//
//   GET  /health          {"ok":true, model, task, adapters_loaded, queued, running, requests, …}
//   GET  /metrics         Prometheus text (metrics.ts)
//   POST /v1/classify     {"adapter"?, "text", "pair"?} or {"adapter"?, "image": base64 PNG/JPEG}
//                                                                     → {"adapter", "labels":[{label,id,score}], "logits"}
//   POST /v1/generate     {"adapter"?, "prompt" | "messages", "max_new_tokens"?, "temperature"?, "top_k"?, "top_p"?,
//                          "seed"?, "stream"?}                         → {"adapter", "text", "tokens", "finish_reason"}
//                          (with "stream": true, server-sent events: one per token, then that object, then [DONE])
// No "adapter" (or "__base__") runs the base model alone.

import { checkSamplingOptions } from '../../generate/sampling.js';
import type { ChatMessage } from '../../io/tokenizer.js';
import {
  type App,
  chatIds,
  checkIds,
  checkRoom,
  imageInputs,
  resolveAdapter,
  textInputs,
  tokenizerOf,
} from '../app.js';
import { runChoice } from '../generation.js';
import {
  Channel,
  type Ctx,
  HttpError,
  type Route,
  optionalBoolean,
  optionalNumber,
  optionalString,
  shown,
} from '../http.js';
import { labelNames, rankLabels } from '../labels.js';

export interface VeraClassify {
  adapter?: string;
  text?: string;
  pair?: string;
  image?: Uint8Array;
}

export interface VeraGenerate {
  adapter?: string;
  prompt?: string;
  messages?: ChatMessage[];
  maxNewTokens?: number;
  sampling?: { temperature?: number; topK?: number; topP?: number; seed?: number };
  onToken?: (token: number | null, text: string) => void;
}

/** Names of loaded adapters, least recently used first (an engine keeps name@version). */
export function loadedNames(app: App): string[] {
  const names = app.engine.stats().loaded.map((slot) => slot.slice(0, slot.lastIndexOf('@')));
  return names.filter((n, i) => names.lastIndexOf(n) === i);
}

export async function classify(app: App, req: VeraClassify, opts: { signal?: AbortSignal; tenant?: string } = {}) {
  const task = app.engine.info.task;
  if (task === 'causal-lm')
    throw new HttpError(400, `the model is a ${app.engine.info.architecture} (causal LM): use /v1/generate`);
  if ((req.text === undefined) === (req.image === undefined))
    throw new HttpError(400, 'give exactly one of "text" and "image"');
  let inputs;
  if (req.image !== undefined) inputs = imageInputs(app, req.image);
  else {
    if (app.imageConfig)
      throw new HttpError(
        400,
        `the model is an image classifier (${app.engine.info.architecture}): send "image", not "text"`,
      );
    inputs = textInputs(app, req.text!, req.pair);
  }
  const adapter = await resolveAdapter(app, req.adapter, 'vera', opts.tenant);
  app.metrics.promptTokens.inc(inputs.ids.length);
  const { logits } = await app.engine.classify(
    { adapter, ...inputs },
    opts.signal === undefined ? {} : { signal: opts.signal },
  );
  const names = app.labelNames ?? labelNames(app.engine.info.config, logits.length);
  return { adapter: adapter.name, labels: rankLabels(logits, names), logits };
}

export async function generate(app: App, req: VeraGenerate, opts: { signal?: AbortSignal; tenant?: string } = {}) {
  const info = app.engine.info;
  if (info.task !== 'causal-lm')
    throw new HttpError(400, `the model is a ${info.architecture} (${info.task}): use /v1/classify`);
  const n = req.maxNewTokens ?? 32;
  const limit = app.limits.maxNewTokens;
  if (!Number.isInteger(n) || n < 1 || n > limit)
    throw new HttpError(400, `max_new_tokens must be an integer from 1 to ${limit}, got ${n}`);
  const sampling = { ...req.sampling, doSample: (req.sampling?.temperature ?? 0) > 0 };
  try {
    checkSamplingOptions(sampling);
  } catch (e) {
    throw new HttpError(400, (e as Error).message);
  }
  if ((req.prompt === undefined) === (req.messages === undefined))
    throw new HttpError(400, 'give exactly one of "prompt" and "messages"');
  const adapter = await resolveAdapter(app, req.adapter, 'vera', opts.tenant);
  const ids = req.messages !== undefined ? chatIds(app, req.messages) : tokenizerOf(app).encode(req.prompt!).ids;
  if (ids.length === 0) throw new HttpError(400, 'the prompt has no tokens to continue');
  checkIds(app, ids, 'the prompt');
  checkRoom(app, ids.length, n, 'max_new_tokens');
  app.metrics.promptTokens.inc(ids.length);
  const choice = await runChoice(app, {
    adapter,
    ids,
    maxNewTokens: n,
    ...(sampling.doSample ? sampling : {}),
    ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    ...(req.onToken ? { onToken: req.onToken } : {}),
  });
  return { adapter: adapter.name, text: choice.text, tokens: choice.tokens, finish_reason: choice.finishReason };
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

/**
 * A generation as server-sent events: `data: {"token","text"}` per token (a last event may carry
 * held-back text with token null), then the whole answer, then `data: [DONE]`. An error before the first
 * token is a plain JSON error; a later one arrives as a `data: {"error"}` event.
 */
function streamed(app: App, ctx: Ctx, req: VeraGenerate) {
  const events = new Channel<unknown>();
  generate(
    app,
    { ...req, onToken: (token, text) => events.push({ token, text }) },
    { signal: ctx.signal, ...(ctx.tenant === undefined ? {} : { tenant: ctx.tenant }) },
  ).then(
    (answer) => {
      events.push(answer);
      events.push('[DONE]');
      events.end();
    },
    (e: unknown) => events.fail(e),
  );
  return { sse: events, onError: (e: unknown) => ({ error: e instanceof Error ? e.message : String(e) }) };
}

export function veraRoutes(app: App): Route[] {
  const route = (method: string, path: string, handler: Route['handler']): Route => ({
    method,
    path,
    label: path,
    family: 'vera',
    handler,
  });
  const scope = (ctx: Ctx) => ({ signal: ctx.signal, ...(ctx.tenant === undefined ? {} : { tenant: ctx.tenant }) });
  return [
    route('GET', '/health', () => {
      const s = app.engine.stats();
      return Promise.resolve({
        status: 200,
        json: {
          ok: true,
          model: app.engine.info.architecture,
          task: app.engine.info.task,
          adapters_loaded: s.loaded.length,
          queued: s.waiting,
          running: s.running,
          requests: s.requests,
          batches: s.batches,
          steps: s.steps,
          generated_tokens: s.generatedTokens,
        },
      });
    }),
    route('GET', '/metrics', async () => ({
      status: 200,
      text: await app.metrics.text(),
      contentType: app.metrics.contentType,
    })),
    route('POST', '/v1/classify', async (ctx) => {
      const body = await ctx.body();
      const req = {
        ...optionalString(body, 'adapter'),
        ...optionalString(body, 'text'),
        ...optionalString(body, 'pair'),
        ...optionalImage(body),
      };
      return { status: 200, json: await classify(app, req, scope(ctx)) };
    }),
    route('POST', '/v1/generate', async (ctx) => {
      const body = await ctx.body();
      const req: VeraGenerate = {
        ...optionalString(body, 'adapter'),
        ...optionalString(body, 'prompt'),
        ...optionalMessages(body),
        ...optionalNumber(body, 'max_new_tokens', 'maxNewTokens'),
        sampling: {
          ...optionalNumber(body, 'temperature', 'temperature'),
          ...optionalNumber(body, 'top_k', 'topK'),
          ...optionalNumber(body, 'top_p', 'topP'),
          ...optionalNumber(body, 'seed', 'seed'),
        },
      };
      if (body['stream'] !== undefined && typeof body['stream'] !== 'boolean')
        throw new HttpError(400, `"stream" must be true or false, got ${shown(body['stream'])}`);
      if (optionalBoolean(body, 'stream') === true) return streamed(app, ctx, req);
      return { status: 200, json: await generate(app, req, scope(ctx)) };
    }),
  ];
}
