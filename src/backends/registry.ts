// Backend registry: the one place that imports concrete backends. `cpu` work goes to the native
// backend when its addon is built, else to the pure-TS backend with a one-line warning saying how to
// get the fast path. VERA_BACKEND=js|native|cuda forces a choice; VERA_DEVICE=cuda (or cpu) picks by
// device. The cuda backend is never chosen implicitly: it is asked for by name or device.
// VERA_ACTIVATIONS=bf16|f32 overrides a backend's activation dtype (bf16 on cuda, f32 on the CPU).

import type { Backend } from './backend.js';
import { activationsFromEnv } from './bf16-views.js';
import { JsBackend } from './js/index.js';
import { loadCudaBackend } from './cuda/index.js';
import { loadNativeBackend } from './native/index.js';

/** Every backend name, in the order help texts list them; BackendName and every CLI list derive from it. */
export const BACKEND_NAMES = ['js', 'native', 'cuda'] as const;

export type BackendName = (typeof BACKEND_NAMES)[number];

export function isBackendName(s: string): s is BackendName {
  return (BACKEND_NAMES as readonly string[]).includes(s);
}

/** The accepted names for error messages: '"js" or "native"' ('"a", "b" or "c"' for three). */
export const BACKEND_CHOICES = BACKEND_NAMES.map((n) => `"${n}"`)
  .join(', ')
  .replace(/, ([^,]*)$/, ' or $1');

const loaded = new Map<BackendName, Backend>();
let nativeError: string | null = null;
let current: Backend | null = null;

/** The backend of that name, created on first use; throws when it cannot be loaded. */
export function getBackend(name: BackendName): Backend {
  const have = loaded.get(name);
  if (have) return have;
  let b: Backend;
  if (name === 'js') b = new JsBackend({ activationDType: activationsFromEnv('js', undefined) });
  else if (name === 'native') b = loadNativeBackend();
  else if (name === 'cuda') b = loadCudaBackend();
  else throw new Error(`[backend] Unknown backend "${String(name)}"; expected ${BACKEND_CHOICES}`);
  loaded.set(name, b);
  return b;
}

/** Whether the native addon loads here (the reason is in nativeUnavailableReason() if not). */
export function nativeAvailable(): boolean {
  if (loaded.has('native')) return true;
  if (nativeError !== null) return false;
  try {
    getBackend('native');
    return true;
  } catch (e) {
    nativeError = e instanceof Error ? e.message : String(e);
    return false;
  }
}

export function nativeUnavailableReason(): string | null {
  return nativeAvailable() ? null : nativeError;
}

/** The backend new tensors go to when none is named. */
export function defaultBackend(): Backend {
  if (current) return current;
  const forced = process.env['VERA_BACKEND'];
  const device = process.env['VERA_DEVICE'];
  if (forced !== undefined && isBackendName(forced)) {
    current = getBackend(forced);
  } else if (device === 'cuda') {
    current = getBackend('cuda');
  } else if (nativeAvailable()) {
    current = getBackend('native');
  } else {
    process.emitWarning(
      `vera-ts: native backend unavailable (${nativeError}); using the slow pure-TypeScript backend. Run "npm run build:native" (needs libdnnl-dev and g++) for the fast path.`,
      { code: 'VERA_NO_NATIVE' },
    );
    current = getBackend('js');
  }
  return current;
}

/** Devices a command may name with --device, and the backend each means. */
export const DEVICE_NAMES = ['cpu', 'cuda'] as const;

export type DeviceName = (typeof DEVICE_NAMES)[number];

/** The backend of a device: cuda → the cuda backend; cpu → native when built, else js. */
export function backendForDevice(device: string): Backend {
  if (device === 'cuda') return getBackend('cuda');
  if (device === 'cpu') return nativeAvailable() ? getBackend('native') : getBackend('js');
  throw new Error(`[backend] Unknown device "${device}"; expected "cpu" or "cuda"`);
}

export function isDeviceName(s: string): s is DeviceName {
  return (DEVICE_NAMES as readonly string[]).includes(s);
}

/** The device each backend runs on: what a backend and a device named together must agree on. */
export const BACKEND_DEVICE: Readonly<Record<BackendName, DeviceName>> = { js: 'cpu', native: 'cpu', cuda: 'cuda' };

/** Sets the default backend for tensors created from now on. */
export function setDefaultBackend(b: Backend | BackendName): void {
  current = typeof b === 'string' ? getBackend(b) : b;
}

/** Runs fn with `b` as the default backend, restoring the previous default afterwards. */
export function withBackend<T>(b: Backend | BackendName, fn: () => T): T {
  const prev = current;
  setDefaultBackend(b);
  try {
    return fn();
  } finally {
    current = prev;
  }
}
