// OpenAI-compatible generation routes, the adapter named in `model` as vLLM, TGI and LoRAX name it
// (../shared/reference/serving-ecosystem.md §1). Errors are OpenAI's {"error": {message, type, param, code}}.
//
//   GET  /v1/models             the base and every adapter (parent: the base's id), OpenAI's list
//   GET  /v1/models/{id}        one of them
//   POST /v1/completions        prompt: string | string[] | ids | ids[]
//   POST /v1/chat/completions   messages rendered by the base's chat template
//
// Both take temperature (default 1: sampling, as OpenAI), top_p, top_k (vLLM's extra), max_tokens (chat
// also max_completion_tokens), stop (a string or a list), seed, n (capped), stream with
// stream_options.include_usage. Choice i of prompt p is index p·n + i; with a seed, choice i samples with
// seed + i, so the n choices differ and each is reproducible.

import type { ChatMessage } from '../../io/tokenizer.js';
import { checkSamplingOptions } from '../../generate/sampling.js';
import { type App, chatIds, checkIds, checkRoom, isBase, resolveAdapter, tokenizerOf } from '../app.js';
import { type Choice, runChoice } from '../generation.js';
import { Channel, type Ctx, HttpError, type Reply, type Route, optionalBoolean, shown } from '../http.js';
import type { AdapterRef } from '../engine/types.js';

const bad = (message: string, param: string) => new HttpError(400, message, { param });

function int(body: Record<string, unknown>, key: string, min: number, max: number): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw bad(`"${key}" must be an integer from ${min} to ${max}, got ${shown(v)}`, key);
  return v;
}

function num(body: Record<string, unknown>, key: string): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(`"${key}" must be a number, got ${shown(v)}`, key);
  return v;
}

/** Fields this server does not implement: a 400 naming the field, rather than an answer that ignores it. */
function refuseUnsupported(body: Record<string, unknown>): void {
  const given = (k: string) => body[k] !== undefined && body[k] !== null && body[k] !== false;
  for (const k of ['logprobs', 'top_logprobs', 'suffix', 'tools', 'functions', 'response_format', 'logit_bias'])
    if (given(k) && !(k === 'logit_bias' && Object.keys(body[k] as object).length === 0))
      throw bad(`"${k}" is not supported by this server`, k);
  if (body['echo'] === true) throw bad('"echo" is not supported by this server', 'echo');
  for (const k of ['presence_penalty', 'frequency_penalty'])
    if (given(k) && body[k] !== 0) throw bad(`"${k}" is not supported by this server (only 0)`, k);
  if (given('best_of') && body['best_of'] !== 1 && body['best_of'] !== body['n'])
    throw bad('"best_of" is not supported by this server', 'best_of');
}

function stopStrings(body: Record<string, unknown>): string[] {
  const v = body['stop'];
  if (v === undefined || v === null) return [];
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length > 16 || !list.every((s) => typeof s === 'string' && s.length > 0))
    throw bad(`"stop" must be a non-empty string or a list of up to 16 of them, got ${shown(v)}`, 'stop');
  return list as string[];
}

interface Sampling {
  temperature: number;
  topP?: number;
  topK?: number;
  seed?: number;
}

function sampling(body: Record<string, unknown>): Sampling {
  const temperature = num(body, 'temperature') ?? 1;
  if (temperature < 0 || temperature > 2)
    throw bad(`"temperature" must be from 0 to 2, got ${temperature}`, 'temperature');
  const topP = num(body, 'top_p');
  const topK = int(body, 'top_k', -1, 1 << 20);
  const seed = int(body, 'seed', -(2 ** 53), 2 ** 53);
  // OpenAI's top-k is off unless asked for (ours defaults to transformers' 50); -1 is vLLM's "off".
  const s: Sampling = { temperature, topK: topK === undefined || topK < 0 ? 0 : topK };
  if (topP !== undefined) s.topP = topP;
  if (seed !== undefined) s.seed = seed >>> 0;
  try {
    if (temperature > 0) checkSamplingOptions({ doSample: true, ...s });
  } catch (e) {
    const param = /topP/.test((e as Error).message)
      ? 'top_p'
      : /topK/.test((e as Error).message)
        ? 'top_k'
        : 'temperature';
    throw bad((e as Error).message, param);
  }
  return s;
}

/** Chat content: a string, or a list of {"type":"text","text"} parts (joined). */
function messagesOf(body: Record<string, unknown>): ChatMessage[] {
  const v = body['messages'];
  const fail = () =>
    bad('"messages" must be a non-empty list of {"role", "content": string or text parts}', 'messages');
  if (!Array.isArray(v) || v.length === 0) throw fail();
  return v.map((m: unknown) => {
    if (m === null || typeof m !== 'object') throw fail();
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== 'string') throw fail();
    if (typeof content === 'string') return { role, content };
    if (content === null || content === undefined) return { role, content: '' };
    if (!Array.isArray(content)) throw fail();
    const parts = content.map((p: unknown) => {
      const part = p as { type?: unknown; text?: unknown } | null;
      if (part?.type !== 'text' || typeof part.text !== 'string')
        throw bad('"messages": only text content parts are supported', 'messages');
      return part.text;
    });
    return { role, content: parts.join('') };
  });
}

/** The completions prompt as id lists: text(s) through the tokenizer, or ids as given. */
function promptIds(app: App, body: Record<string, unknown>): number[][] {
  const p = body['prompt'];
  const fail = () => bad('"prompt" must be a string, a list of strings, a list of ids or a list of id lists', 'prompt');
  const isIds = (x: unknown): x is number[] =>
    Array.isArray(x) && x.length > 0 && x.every((t) => typeof t === 'number' && Number.isInteger(t));
  let prompts: (string | number[])[];
  if (typeof p === 'string' || isIds(p)) prompts = [p];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string' || isIds(x))) prompts = p;
  else throw fail();
  if (prompts.length > app.limits.maxInputs)
    throw bad(`"prompt" has ${prompts.length} prompts; at most ${app.limits.maxInputs}`, 'prompt');
  return prompts.map((x, i) => {
    const ids = typeof x === 'string' ? tokenizerOf(app).encode(x).ids : x;
    if (ids.length === 0) throw bad(`prompt ${i} has no tokens to continue`, 'prompt');
    checkIds(app, ids, `prompt ${i}`, 400, 'prompt');
    return ids;
  });
}

interface Plan {
  model: string;
  adapter: AdapterRef;
  prompts: number[][];
  n: number;
  maxNew: number;
  sampling: Sampling;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
}

async function plan(app: App, ctx: Ctx, body: Record<string, unknown>, chat: boolean): Promise<Plan> {
  if (app.engine.info.task !== 'causal-lm')
    throw bad(`the model is a ${app.engine.info.architecture} (${app.engine.info.task}), not a causal LM`, 'model');
  const model = body['model'];
  if (typeof model !== 'string') throw bad(`"model" must be a string, got ${shown(model)}`, 'model');
  refuseUnsupported(body);
  const n = int(body, 'n', 1, app.limits.maxChoices) ?? 1;
  const s = sampling(body);
  const stop = stopStrings(body);
  const stream = optionalBoolean(body, 'stream') ?? false;
  const opts = body['stream_options'];
  if (opts !== undefined && opts !== null && (typeof opts !== 'object' || Array.isArray(opts)))
    throw bad('"stream_options" must be an object', 'stream_options');
  const includeUsage = stream && (opts as { include_usage?: unknown } | null)?.include_usage === true;
  const adapter = await resolveAdapter(app, model, 'openai', ctx.tenant);
  const prompts = chat ? [chatIds(app, messagesOf(body))] : promptIds(app, body);
  if (prompts.length * n > app.limits.maxInputs)
    throw bad(`${prompts.length} prompts × n ${n} is over ${app.limits.maxInputs} choices`, 'n');
  const key = chat && body['max_completion_tokens'] != null ? 'max_completion_tokens' : 'max_tokens';
  const limit = app.limits.maxNewTokens;
  const longest = Math.max(...prompts.map((p) => p.length));
  // OpenAI's defaults: 16 for completions; for chat, up to the context (here also up to the server's cap).
  const maxNew = int(body, key, 1, limit) ?? (chat ? Math.max(1, Math.min(limit, app.positions - longest)) : 16);
  checkRoom(app, longest, maxNew, key);
  return { model, adapter, prompts, n, maxNew, sampling: s, stop, stream, includeUsage };
}

type OnPiece = (index: number, text: string) => void;

/** Runs every choice of a plan at once (they batch together), each reporting its text as it comes. */
function runAll(app: App, ctx: Ctx, p: Plan, onPiece?: OnPiece): Promise<Choice[]> {
  const jobs = p.prompts.flatMap((ids, pi) =>
    Array.from({ length: p.n }, (_, i) => {
      const index = pi * p.n + i;
      const { temperature, topP, topK } = p.sampling;
      // Sampled choices each draw from their own seeded stream (seed + i, or a fresh random seed).
      const seed = temperature > 0 ? ((p.sampling.seed ?? Math.floor(Math.random() * 2 ** 32)) + i) >>> 0 : undefined;
      return runChoice(app, {
        adapter: p.adapter,
        ids,
        maxNewTokens: p.maxNew,
        ...(temperature > 0 ? { temperature, ...(topP === undefined ? {} : { topP }), topK: topK ?? 0 } : {}),
        ...(seed === undefined ? {} : { seed }),
        stop: p.stop,
        signal: ctx.signal,
        ...(onPiece ? { onToken: (_t: number | null, text: string) => text && onPiece(index, text) } : {}),
      });
    }),
  );
  for (const ids of p.prompts) app.metrics.promptTokens.inc(ids.length);
  return Promise.all(jobs);
}

function usage(p: Plan, choices: Choice[]) {
  const prompt = p.prompts.reduce((a, ids) => a + ids.length, 0);
  const completion = choices.reduce((a, c) => a + c.tokens.length, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

let counter = 0;
const newId = (prefix: string) => `${prefix}-${Date.now().toString(36)}${(counter++).toString(36).padStart(4, '0')}`;

async function completion(app: App, ctx: Ctx, chat: boolean): Promise<Reply> {
  const p = await plan(app, ctx, await ctx.body(), chat);
  const id = newId(chat ? 'chatcmpl' : 'cmpl');
  const created = Math.floor(Date.now() / 1000);
  const head = { id, object: chat ? 'chat.completion' : 'text_completion', created, model: p.model };
  if (!p.stream) {
    const choices = await runAll(app, ctx, p);
    return {
      status: 200,
      json: {
        ...head,
        choices: choices.map((c, index) =>
          chat
            ? {
                index,
                message: { role: 'assistant', content: c.text, refusal: null },
                logprobs: null,
                finish_reason: c.finishReason,
              }
            : { index, text: c.text, logprobs: null, finish_reason: c.finishReason },
        ),
        usage: usage(p, choices),
      },
    };
  }
  // Streaming: OpenAI's chunks; with include_usage every chunk has "usage": null and a last chunk has
  // the usage and no choices. Chat chunks open each choice with the assistant role.
  const events = new Channel<unknown>();
  const chunkHead = { ...head, object: chat ? 'chat.completion.chunk' : 'text_completion' };
  const chunk = (index: number, text: string | null, finish: string | null) => ({
    ...chunkHead,
    choices: [
      chat
        ? { index, delta: text === null ? {} : { content: text }, logprobs: null, finish_reason: finish }
        : { index, text: text ?? '', logprobs: null, finish_reason: finish },
    ],
    ...(p.includeUsage ? { usage: null } : {}),
  });
  if (chat)
    for (let i = 0; i < p.prompts.length * p.n; i++)
      events.push({
        ...chunkHead,
        choices: [{ index: i, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }],
        ...(p.includeUsage ? { usage: null } : {}),
      });
  runAll(app, ctx, p, (index, text) => events.push(chunk(index, text, null))).then(
    (choices) => {
      choices.forEach((c, index) => events.push(chunk(index, null, c.finishReason)));
      if (p.includeUsage) events.push({ ...chunkHead, choices: [], usage: usage(p, choices) });
      events.push('[DONE]');
      events.end();
    },
    (e: unknown) => events.fail(e),
  );
  return { sse: events, onError: (e: unknown) => errorEvent(e) };
}

/** An error after the stream began: an event with an `error` key, which the openai client raises. */
function errorEvent(e: unknown): unknown {
  return {
    error: { message: e instanceof Error ? e.message : String(e), type: 'server_error', param: null, code: null },
  };
}

export function openaiRoutes(app: App): Route[] {
  const card = (id: string, created: number, ownedBy: string, parent: string | null, root: string) => ({
    id,
    object: 'model',
    created,
    owned_by: ownedBy,
    root,
    parent,
  });
  const models = async (ctx: Ctx) => [
    card(app.baseId, app.created, 'vera', null, app.modelDir),
    ...(await app.store.list(ctx.tenant)).map((a) =>
      card(a.name, Math.floor(a.createdAt / 1000) || app.created, a.owner ?? 'vera', app.baseId, a.name),
    ),
  ];
  return [
    {
      method: 'GET',
      path: '/v1/models',
      label: '/v1/models',
      family: 'openai',
      handler: async (ctx) => ({ status: 200, json: { object: 'list', data: await models(ctx) } }),
    },
    {
      method: 'GET',
      path: /^\/v1\/models\/[^/]+$/,
      label: '/v1/models/{id}',
      family: 'openai',
      handler: async (ctx) => {
        const id = decodeURIComponent(ctx.path.slice('/v1/models/'.length));
        const all = await models(ctx);
        const found = isBase(app, id) ? all[0] : all.find((m) => m.id === id);
        if (!found)
          throw new HttpError(404, `The model \`${id}\` does not exist.`, { param: 'model', code: 'model_not_found' });
        return { status: 200, json: found };
      },
    },
    {
      method: 'POST',
      path: '/v1/completions',
      label: '/v1/completions',
      family: 'openai',
      handler: (ctx) => completion(app, ctx, false),
    },
    {
      method: 'POST',
      path: '/v1/chat/completions',
      label: '/v1/chat/completions',
      family: 'openai',
      handler: (ctx) => completion(app, ctx, true),
    },
  ];
}
