// OpenAI's /v1/embeddings and vLLM's /classify, for encoder and classifier bases, each input on the
// adapter named in `model` (errors in OpenAI's shape):
//
//   POST /v1/embeddings  {"model", "input": string | string[] | ids | ids[], "encoding_format"?: "float" | "base64"}
//                        → {"object":"list", "data":[{"object":"embedding", "index", "embedding"}], "model", "usage"}
//   POST /classify       {"model", "input": string | string[]}
//                        → {"id", "object":"list", "created", "model", "data":[{"index", "label", "probs", "num_classes"}], "usage"}
//
// base64 is the little-endian float32 bytes of the vector, which the openai client asks for by default
// and decodes as such (a float list answered to it would be read as bytes: serving-ecosystem.md §1.5).

import { type App, checkIds, resolveAdapter, textInputs } from '../app.js';
import { type Ctx, HttpError, type Route, shown } from '../http.js';
import { labelNames, softmax } from '../labels.js';

const bad = (message: string, param: string) => new HttpError(400, message, { param });

/** The inputs: strings, or (embeddings only) id lists used as given. */
function inputsOf(app: App, body: Record<string, unknown>, ids: boolean): (string | number[])[] {
  const v = body['input'];
  const isIds = (x: unknown): x is number[] =>
    ids && Array.isArray(x) && x.length > 0 && x.every((t) => typeof t === 'number' && Number.isInteger(t));
  let list: (string | number[])[];
  if (typeof v === 'string' || isIds(v)) list = [v];
  else if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' || isIds(x))) list = v;
  else
    throw bad(
      `"input" must be a string or a non-empty list of strings${ids ? ' or of token id lists' : ''}, got ${shown(v)}`,
      'input',
    );
  if (list.length > app.limits.maxInputs)
    throw bad(`"input" has ${list.length} items; at most ${app.limits.maxInputs}`, 'input');
  return list;
}

function modelOf(body: Record<string, unknown>): string {
  const m = body['model'];
  if (typeof m !== 'string') throw bad(`"model" must be a string, got ${shown(m)}`, 'model');
  return m;
}

const asText = (x: string | number[], i: number, app: App) => {
  if (typeof x !== 'string') {
    checkIds(app, x, `input ${i}`, 400, 'input');
    return { ids: x, typeIds: x.map(() => 0), tokens: x.length };
  }
  if (x.length === 0) throw bad(`input ${i} is empty`, 'input');
  return textInputs(app, x, undefined, 400);
};

async function embeddings(app: App, ctx: Ctx) {
  const body = await ctx.body();
  const model = modelOf(body);
  const format = body['encoding_format'] ?? 'float';
  if (format !== 'float' && format !== 'base64')
    throw bad(`"encoding_format" must be "float" or "base64", got ${shown(format)}`, 'encoding_format');
  if (body['dimensions'] !== undefined && body['dimensions'] !== null)
    throw bad('"dimensions" is not supported by this server', 'dimensions');
  const inputs = inputsOf(app, body, true).map((x, i) => asText(x, i, app));
  const adapter = await resolveAdapter(app, model, 'openai', ctx.tenant);
  const tokens = inputs.reduce((a, x) => a + x.tokens, 0);
  app.metrics.promptTokens.inc(tokens);
  const results = await Promise.all(
    inputs.map((x) => app.engine.embed({ adapter, ids: x.ids, typeIds: x.typeIds }, { signal: ctx.signal })),
  );
  return {
    object: 'list',
    data: results.map(({ embedding }, index) => ({
      object: 'embedding',
      index,
      embedding:
        format === 'float'
          ? Array.from(embedding)
          : Buffer.from(littleEndian(embedding).buffer, 0, embedding.length * 4).toString('base64'),
    })),
    model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  };
}

/** The float32 values as little-endian bytes whatever the host's order. */
function littleEndian(v: Float32Array): Uint8Array {
  const out = new Uint8Array(v.length * 4);
  const view = new DataView(out.buffer);
  v.forEach((x, i) => view.setFloat32(i * 4, x, true));
  return out;
}

let counter = 0;

async function classify(app: App, ctx: Ctx) {
  const body = await ctx.body();
  const model = modelOf(body);
  if (app.engine.info.task === 'causal-lm')
    throw bad(`the model is a ${app.engine.info.architecture} (causal LM), not a classifier`, 'model');
  if (app.imageConfig) throw bad(`the model is an image classifier: use /v1/classify with "image"`, 'input');
  const inputs = inputsOf(app, body, false).map((x, i) => asText(x, i, app));
  const adapter = await resolveAdapter(app, model, 'openai', ctx.tenant);
  const tokens = inputs.reduce((a, x) => a + x.tokens, 0);
  app.metrics.promptTokens.inc(tokens);
  const results = await Promise.all(
    inputs.map((x) => app.engine.classify({ adapter, ids: x.ids, typeIds: x.typeIds }, { signal: ctx.signal })),
  );
  return {
    id: `classify-${Date.now().toString(36)}${(counter++).toString(36)}`,
    object: 'list',
    created: Math.floor(Date.now() / 1000),
    model,
    data: results.map(({ logits }, index) => {
      const probs = softmax(logits);
      const names = app.labelNames ?? labelNames(app.engine.info.config, logits.length);
      const best = probs.indexOf(Math.max(...probs));
      return { index, label: names[best], probs, num_classes: probs.length };
    }),
    usage: { prompt_tokens: tokens, total_tokens: tokens, completion_tokens: 0, prompt_tokens_details: null },
  };
}

export function encoderRoutes(app: App): Route[] {
  return [
    {
      method: 'POST',
      path: '/v1/embeddings',
      label: '/v1/embeddings',
      family: 'openai',
      handler: async (ctx) => ({ status: 200, json: await embeddings(app, ctx) }),
    },
    {
      method: 'POST',
      path: '/classify',
      label: '/classify',
      family: 'openai',
      handler: async (ctx) => ({ status: 200, json: await classify(app, ctx) }),
    },
  ];
}
