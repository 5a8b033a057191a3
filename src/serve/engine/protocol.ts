// The messages between client.ts (main thread) and worker.ts (the engine's thread). Every call has an
// id; the worker asks the main thread for adapter files (the AdapterSource lives there, with the store)
// with ids of its own. Errors cross as their message, status and name (EngineError).

import type { EngineOptions } from './local.js';
import type { AdapterRef, ClassifyRequest, EmbedRequest, EngineStats, GenerateRequest, Engine } from './types.js';
import { EngineError } from './types.js';

/** What the worker is started with (workerData). */
export interface WorkerInit {
  options: EngineOptions;
  /** A backend name (registry: 'js', 'native', 'cuda'); default the registry's default. */
  backend?: string;
  /** How often the worker sends its stats, in ms. */
  statsEveryMs: number;
}

export interface WireError {
  message: string;
  status: number;
  name: string;
}

export type ToWorker =
  | { type: 'generate'; id: number; req: GenerateRequest; stream: boolean }
  | { type: 'classify'; id: number; req: ClassifyRequest }
  | { type: 'embed'; id: number; req: EmbedRequest }
  | { type: 'cancel'; id: number }
  | { type: 'evict'; name: string; keepVersion?: number }
  | { type: 'source-reply'; id: number; files?: Record<string, Uint8Array>; error?: WireError }
  | { type: 'close' };

export type FromWorker =
  | { type: 'ready'; info: Engine['info']; stats: EngineStats }
  | { type: 'failed'; error: WireError }
  | { type: 'token'; id: number; token: number }
  | { type: 'result'; id: number; value: unknown; stats: EngineStats }
  | { type: 'error'; id: number; error: WireError; stats: EngineStats }
  | { type: 'source'; id: number; ref: AdapterRef }
  | { type: 'stats'; stats: EngineStats }
  | { type: 'log'; line: string }
  | { type: 'closed' };

export function toWire(e: unknown): WireError {
  if (e instanceof Error) {
    const status = (e as { status?: unknown }).status;
    return { message: e.message, status: typeof status === 'number' ? status : 500, name: e.name };
  }
  return { message: String(e), status: 500, name: 'Error' };
}

export function fromWire(w: WireError): EngineError {
  return new EngineError(w.status, w.message, w.name);
}
