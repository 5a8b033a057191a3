// Errors of the store, auth and admin handlers as the server answers them: OpenAI's error object
// `{"error": {"message", "type", "param", "code"}}` with the HTTP status (and headers such as
// Retry-After). ApiError carries them; errorReply() turns any error (a StoreError too) into the reply.

import { StoreError, type StoreErrorCode } from '../store/types.js';

export interface ApiErrorExtra {
  /** OpenAI's error type; default from the status (see typeFor). */
  type?: string;
  /** A machine-readable code, e.g. 'invalid_api_key', 'model_not_found', 'rate_limit_exceeded'. */
  code?: string;
  /** The request field at fault. */
  param?: string;
  /** Extra response headers (Retry-After, WWW-Authenticate). */
  headers?: Record<string, string>;
}

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly extra: ApiErrorExtra = {},
  ) {
    super(message);
  }
  get type(): string {
    return this.extra.type ?? typeFor(this.status);
  }
  get code(): string | null {
    return this.extra.code ?? null;
  }
  get param(): string | null {
    return this.extra.param ?? null;
  }
  get headers(): Record<string, string> {
    return this.extra.headers ?? {};
  }
}

/** OpenAI's types: the client retries 429 and 5xx, whatever the type says. */
export function typeFor(status: number): string {
  if (status === 401) return 'invalid_request_error'; // what api.openai.com answers a bad key with
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

const STORE_CODES: Record<StoreErrorCode, string> = {
  spec: 'store_misconfigured',
  unavailable: 'store_unavailable',
  invalid: 'invalid_adapter',
  conflict: 'adapter_conflict',
  name: 'invalid_name',
};

export interface ErrorReply {
  status: number;
  headers: Record<string, string>;
  json: { error: { message: string; type: string; param: string | null; code: string | null } };
}

/** The reply for `e`: an ApiError or StoreError as it says; anything else a 500 with its message. */
export function errorReply(e: unknown): ErrorReply {
  const err = toApiError(e);
  return {
    status: err.status,
    headers: err.headers,
    json: { error: { message: err.message, type: err.type, param: err.param, code: err.code } },
  };
}

export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof StoreError)
    return new ApiError(e.status, e.message, {
      code: STORE_CODES[e.code],
      // A database restarting: the client should retry soon.
      ...(e.code === 'unavailable' ? { headers: { 'retry-after': '1' } } : {}),
    });
  return new ApiError(500, e instanceof Error ? e.message : String(e));
}

/** What an admin handler answers (the same shape as the server's JSON reply). */
export interface ApiReply {
  status: number;
  json: unknown;
  headers?: Record<string, string>;
}

/** Reads a small JSON object body (at most `limit` bytes): 400 when not one, 413 when larger. */
export function readJsonObject(
  req: import('node:http').IncomingMessage,
  limit = 16 << 10,
): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    req.on('end', () => {
      if (size > limit) return reject(new ApiError(413, `the request body is over ${limit} bytes`));
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = text.trim() === '' ? {} : JSON.parse(text);
      } catch (e) {
        return reject(new ApiError(400, `the body is not JSON: ${(e as Error).message}`));
      }
      if (body === null || typeof body !== 'object' || Array.isArray(body))
        return reject(new ApiError(400, 'the body must be a JSON object'));
      resolve(body as Record<string, unknown>);
    });
    req.on('error', reject);
  });
}
