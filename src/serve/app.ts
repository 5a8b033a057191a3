// What every route of `vera serve` shares: the engine, the adapter store, the tokenizer, the limits,
// the metrics, and the HTTP side's part of a request's preparation — the adapter a `model` or `adapter`
// field names (404 when absent, or another tenant's), prompts and conversations to ids, texts and images to classifier
// inputs. Everything is checked here, where the request arrives, so that a request that cannot run is
// refused alone rather than failing the batch it would have joined.

import { basename, resolve as resolvePath } from 'node:path';
import { BASE_ADAPTER } from '../adapters/mixed.js';
import { type ImageProcessorConfig, decodeImage, outputSize, preprocessImage } from '../io/image.js';
import { type ChatMessage, Tokenizer } from '../io/tokenizer.js';
import { checkTokenIds } from '../io/token-ids.js';
import { vocabSizeOf } from '../models/text-inputs.js';
import type { AdapterRef, ClassifyRequest, Engine } from './engine/types.js';
import { HttpError } from './http.js';
import type { ServerMetrics } from './metrics.js';
import type { AdapterStore } from './store/types.js';

export interface Limits {
  /** Largest new-token count a request may ask for. */
  maxNewTokens: number;
  /** Most choices (`n`) per request. */
  maxChoices: number;
  /** Most inputs (prompts, texts) in one request. */
  maxInputs: number;
}

export interface App {
  readonly engine: Engine;
  readonly store: AdapterStore;
  /** Null for an image model without tokenizer files. */
  readonly tokenizer: Tokenizer | null;
  readonly modelDir: string;
  /** The base's id in /v1/models and `model`. */
  readonly baseId: string;
  readonly limits: Limits;
  readonly metrics: ServerMetrics;
  readonly labelNames: string[] | undefined;
  readonly imageConfig: ImageProcessorConfig | null;
  /** Longest input the model takes (texts beyond are cut), when known. */
  readonly maxLength: number | undefined;
  /** Positions of the model (GPT-2's learned table); Infinity for rotary models. */
  readonly positions: number;
  /** When the server started, s since the epoch (`created` of the base in /v1/models). */
  readonly created: number;
}

export const BASE_REF: AdapterRef = { name: BASE_ADAPTER, version: 0 };

/** True when `model` names the base: its id, the model directory as given or resolved, its basename, or ''. */
export function isBase(app: App, model: string): boolean {
  return (
    model === '' ||
    model === BASE_ADAPTER ||
    model === app.baseId ||
    model === app.modelDir ||
    model === basename(resolvePath(app.modelDir)) ||
    resolvePath(model) === resolvePath(app.modelDir)
  );
}

/**
 * The adapter a request names (undefined or the base: the base alone) at its current version; 404 when
 * the store has none, and the same 404 when it belongs to another tenant than `tenant` (undefined: an
 * admin, who may use every adapter).
 */
export async function resolveAdapter(
  app: App,
  name: string | undefined,
  family: 'vera' | 'openai',
  tenant?: string,
): Promise<AdapterRef> {
  if (name === undefined || isBase(app, name)) {
    app.metrics.adapterRequests.inc({ adapter: BASE_ADAPTER });
    return BASE_REF;
  }
  const info = await app.store.info(name);
  if (info === null || (tenant !== undefined && info.owner !== null && info.owner !== tenant)) {
    if (family === 'openai')
      throw new HttpError(404, `The model \`${name}\` does not exist.`, { param: 'model', code: 'model_not_found' });
    const available = (await app.store.list(tenant)).map((a) => a.name);
    const shown = available.length > 20 ? [...available.slice(0, 20), `… ${available.length - 20} more`] : available;
    throw new HttpError(404, `no adapter "${name}" in ${app.store.spec} (available: ${shown.join(', ') || 'none'})`);
  }
  app.metrics.adapterRequests.inc({ adapter: name });
  return { name, version: info.version };
}

export function tokenizerOf(app: App): Tokenizer {
  if (!app.tokenizer)
    throw new HttpError(
      400,
      `${app.modelDir} has no tokenizer files (tokenizer.json, vocab.json + merges.txt or vocab.txt)`,
    );
  return app.tokenizer;
}

// Ids are checked where they are made: a kernel on a device would report a bad one late.
export function checkIds(app: App, ids: readonly number[], what: string, status = 422, param?: string): void {
  try {
    checkTokenIds(ids, vocabSizeOf(app.engine.info.config), what);
  } catch (e) {
    throw new HttpError(status, (e as Error).message, param === undefined ? {} : { param });
  }
}

/** A conversation rendered by the tokenizer's chat template with the generation prompt, as ids. */
export function chatIds(app: App, messages: ChatMessage[], param = 'messages'): number[] {
  const tokenizer = tokenizerOf(app);
  try {
    const text = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
    return tokenizer.encode(text, { addSpecialTokens: false }).ids;
  } catch (e) {
    throw new HttpError(400, `"${param}": ${(e as Error).message}`, { param });
  }
}

/** 400 unless the prompt and `maxNew` new tokens fit the model's positions. */
export function checkRoom(app: App, promptLength: number, maxNew: number, param: string): void {
  if (promptLength + maxNew > app.positions)
    throw new HttpError(
      400,
      `the prompt's ${promptLength} tokens and ${param} ${maxNew} exceed the model's ${app.positions} positions`,
      { param },
    );
}

/** A text (with an optional pair) as classifier or encoder inputs, cut to the model's length. */
export function textInputs(
  app: App,
  text: string,
  pair?: string,
  status = 422,
): { ids: number[]; typeIds: number[]; tokens: number } {
  const e = tokenizerOf(app).encode(text, pair === undefined ? {} : { pair });
  if (e.ids.length === 0) throw new HttpError(400, 'the text has no tokens to classify');
  checkIds(app, e.ids, 'the text', status);
  // Longer inputs are cut to the model's positions, as vera train and vera eval cut them.
  const limit = app.maxLength ?? Infinity;
  return { ids: e.ids.slice(0, limit), typeIds: e.tokenTypeIds.slice(0, limit), tokens: Math.min(e.ids.length, limit) };
}

/** An image (PNG/JPEG bytes) as a ViT's preprocessed pixel values. */
export function imageInputs(app: App, image: Uint8Array): Omit<ClassifyRequest, 'adapter'> {
  const config = app.imageConfig;
  if (!config)
    throw new HttpError(
      400,
      `the model is a text classifier (${app.engine.info.architecture}): send "text", not "image"`,
    );
  try {
    const img = decodeImage(image, 'the request image');
    const { height, width } = outputSize(img.width, img.height, config);
    return { ids: [], typeIds: [], pixels: preprocessImage(img, config), size: [height, width] };
  } catch (e) {
    throw new HttpError(400, (e as Error).message);
  }
}
