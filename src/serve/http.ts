// The HTTP layer of `vera serve`, kept apart from the model work: a route is a handler from a request
// context to a reply (JSON, text, or a stream of server-sent events), and the dispatcher in server.ts
// writes the reply, or the error in the shape of the route's family (vera's own `{"error": "…"}` or
// OpenAI's `{"error": {message, type, param, code}}`).

import type { IncomingMessage } from 'node:http';
import type { Principal } from './auth/policy.js';

/** An error with the HTTP status it is answered with, and (for OpenAI's shape) the field at fault. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly extra: { param?: string; code?: string; headers?: Record<string, string> } = {},
  ) {
    super(message);
  }
}

/** What a handler sees of a request. */
export interface Ctx {
  readonly method: string;
  /** The path without the query. */
  readonly path: string;
  readonly req: IncomingMessage;
  /** The JSON object body (read once; 400 when not a JSON object, 413 beyond the body limit). */
  body(): Promise<Record<string, unknown>>;
  /** Aborted when the client goes away before the reply is complete. */
  readonly signal: AbortSignal;
  /** Who the request is (its key's tenant and role; the local admin on a server without keys). */
  readonly principal: Principal;
  /** The tenant whose adapters the request may see and use (undefined: every adapter, for admins). */
  readonly tenant?: string | undefined;
}

export type Reply =
  | { status: number; json: unknown; headers?: Record<string, string> }
  | { status: number; text: string; contentType: string }
  /**
   * Server-sent events: each item is written as `data: <JSON>` (strings as they are). The first item is
   * awaited before the headers go out, so an error before it is still answered as a plain error status.
   */
  | { sse: AsyncIterable<unknown>; onError: (e: unknown) => unknown };

export type Handler = (ctx: Ctx) => Promise<Reply>;

/** Which error shape a route answers with. */
export type Family = 'vera' | 'openai';

export interface Route {
  method: string;
  /** An exact path, or a pattern (its groups are not used: handlers read ctx.path). */
  path: string | RegExp;
  /** The path as metrics label it (patterns would otherwise make one series per URL). */
  label: string;
  family: Family;
  handler: Handler;
}

export const MAX_BODY = 1 << 20;

export function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
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

/** `value` as JSON for an error message ("nothing" when absent). */
export function shown(value: unknown): string {
  return JSON.stringify(value) ?? 'nothing';
}

// Field readers: absent and null are "not given"; a value of the wrong type is a 400 naming the field.

export function requiredString(body: Record<string, unknown>, key: string): string {
  const v = body[key];
  if (typeof v !== 'string') throw new HttpError(400, `"${key}" must be a string, got ${shown(v)}`, { param: key });
  return v;
}

export function optionalString<K extends string>(body: Record<string, unknown>, key: K): { [P in K]?: string } {
  if (body[key] === undefined || body[key] === null) return {};
  return { [key]: requiredString(body, key) } as { [P in K]?: string };
}

export function optionalNumber<K extends string>(
  body: Record<string, unknown>,
  key: string,
  as: K,
): { [P in K]?: number } {
  const v = body[key];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw new HttpError(400, `"${key}" must be a number, got ${shown(v)}`, { param: key });
  return { [as]: v } as { [P in K]?: number };
}

export function optionalBoolean(body: Record<string, unknown>, key: string): boolean | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean')
    throw new HttpError(400, `"${key}" must be true or false, got ${shown(v)}`, { param: key });
  return v;
}

/** The status an error is answered with: its own (HttpError, engine and store errors carry one), else 500. */
export function statusOf(e: unknown): number {
  const s = (e as { status?: unknown } | null)?.status;
  return typeof s === 'number' && Number.isInteger(s) && s >= 400 && s <= 599 ? s : 500;
}

/** True for the rejection of a cancelled call (an AbortSignal fired). */
export function isAbort(e: unknown): boolean {
  return (e as { name?: unknown } | null)?.name === 'AbortError';
}

const OPENAI_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  403: 'permission_error',
  404: 'invalid_request_error',
  409: 'invalid_request_error',
  413: 'invalid_request_error',
  422: 'invalid_request_error',
  429: 'rate_limit_error',
};

/** The fields of OpenAI's error object an error carries (HttpError's and auth's ApiError's `extra`). */
function extraOf(e: unknown): { type?: string; param?: string; code?: string; headers?: Record<string, string> } {
  const x = (e as { extra?: unknown } | null)?.extra;
  return x !== null && typeof x === 'object' ? x : {};
}

/** An error as a route family answers it: vera's `{"error": "…"}`, or OpenAI's object. */
export function errorBody(e: unknown, family: Family): unknown {
  const message = e instanceof Error ? e.message : String(e);
  if (family === 'vera') return { error: message };
  const status = statusOf(e);
  const extra = extraOf(e);
  return {
    error: {
      message,
      type: extra.type ?? OPENAI_TYPES[status] ?? (status >= 500 ? 'server_error' : 'invalid_request_error'),
      param: extra.param ?? null,
      code: extra.code ?? null,
    },
  };
}

/** Headers an error is answered with: its own, and retry-after on 429/503 (the openai client honours it). */
export function errorHeaders(e: unknown): Record<string, string> {
  const own = extraOf(e).headers ?? {};
  const status = statusOf(e);
  return status === 429 || status === 503 ? { 'retry-after': '1', ...own } : own;
}

/**
 * A queue read as an async iterable: what callbacks (a generation's tokens) push is read by the reply
 * writer in order; fail() makes the reader throw at that point.
 */
export class Channel<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #ended = false;
  #error: { e: unknown } | null = null;
  #wake: (() => void) | null = null;

  push(item: T): void {
    if (this.#ended) return;
    this.#items.push(item);
    this.#notify();
  }

  end(): void {
    this.#ended = true;
    this.#notify();
  }

  fail(e: unknown): void {
    if (this.#ended) return;
    this.#error = { e };
    this.#ended = true;
    this.#notify();
  }

  #notify(): void {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.#items.length > 0) {
        yield this.#items.shift()!;
        continue;
      }
      if (this.#ended) {
        if (this.#error) throw this.#error.e;
        return;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }
}
