// What every `vera` subcommand shares: one-line argument errors, --backend/--device/--threads,
// integer and number flags, dash/underscore flag spellings, stdout writes that survive process.exit,
// progress lines.

import {
  BACKEND_CHOICES,
  BACKEND_DEVICE,
  BACKEND_NAMES,
  type BackendName,
  DEVICE_NAMES,
  type DeviceName,
  backendForDevice,
  defaultBackend,
  getBackend,
  isBackendName,
  isDeviceName,
  setDefaultBackend,
} from '../backends/registry.js';

/** Runs parseArgs for `command`, its errors as one line that points at the command's --help. */
export function parseCommandArgs<T>(command: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e))
      .split('\n')
      .join(' ')
      .replace(/\. To specify a positional.*$/, '');
    throw new Error(`${msg} (see vera ${command} --help)`, { cause: e });
  }
}

/** Flags may be spelled --name_with_underscores or --name-with-dashes; parseArgs gets the former. */
export function flagNames(args: readonly string[]): string[] {
  return args.map((a) =>
    a.startsWith('--') ? a.replace(/^--([^=]+)/, (_m, n: string) => `--${n.replaceAll('-', '_')}`) : a,
  );
}

/** The accepted --device values for error messages: '"cpu" or "cuda"'. */
const DEVICE_CHOICES = DEVICE_NAMES.map((n) => `"${n}"`)
  .join(', ')
  .replace(/, ([^,]*)$/, ' or $1');

/**
 * --backend and --device checked together, before anything loads: each must be a known name, and
 * given together they must agree (js and native run on cpu, cuda on cuda). Returns what was named.
 */
export function backendFlags(
  backend: string | undefined,
  device: string | undefined,
): { backend?: BackendName; device?: DeviceName } {
  if (backend !== undefined && !isBackendName(backend))
    throw new Error(`--backend must be ${BACKEND_CHOICES}, got "${backend}"`);
  if (device !== undefined && !isDeviceName(device))
    throw new Error(`--device must be ${DEVICE_CHOICES}, got "${device}"`);
  if (backend !== undefined && device !== undefined && BACKEND_DEVICE[backend] !== device)
    throw new Error(
      `--backend ${backend} and --device ${device} disagree: the ${backend} backend runs on ${BACKEND_DEVICE[backend]} (give one of the two flags)`,
    );
  return { ...(backend === undefined ? {} : { backend }), ...(device === undefined ? {} : { device }) };
}

/**
 * Applies --backend, --device and --threads before any tensor is made: the backend is loaded here, so
 * one that cannot load (--device cuda without a GPU, or VERA_DEVICE=cuda) fails now, as one line.
 * --threads sizes a CPU backend's worker pool; a backend without one (js, cuda) ignores it.
 */
export function selectBackend(backend: string | undefined, threads: string | undefined, device?: string): void {
  const named = backendFlags(backend, device);
  const n = threads === undefined ? undefined : intFlag('threads', threads, 1);
  const chosen = loadOneLine(() => {
    if (named.backend !== undefined) return getBackend(named.backend);
    if (named.device !== undefined) return backendForDevice(named.device);
    return null;
  });
  if (chosen) setDefaultBackend(chosen);
  const b = chosen ?? loadOneLine(defaultBackend, environmentChoice());
  if (n !== undefined) b.setThreads?.(n);
}

/** The environment variable that picks the default backend, for an error loading it. */
function environmentChoice(): string | undefined {
  const forced = process.env['VERA_BACKEND'];
  if (forced !== undefined && isBackendName(forced)) return `VERA_BACKEND=${forced}`;
  return process.env['VERA_DEVICE'] === 'cuda' ? 'VERA_DEVICE=cuda' : undefined;
}

/** Runs a backend load; its error (an addon's may span lines) becomes one line, naming `why` if given. */
function loadOneLine<T>(load: () => T, why?: string): T {
  try {
    return load();
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e))
      .trim()
      .split(/\s*\n\s*/)
      .join(' ');
    throw new Error(why === undefined ? msg : `${msg} (${why} asked for it; --device cpu overrides it)`, {
      cause: e,
    });
  }
}

/** Help lines of one option: the flag, then `text` from `column` (the flag on its own line if it is longer). */
function optionHelp(flag: string, text: readonly string[], column: number): string {
  const head = `  ${flag}`;
  const pad = ' '.repeat(column);
  const lines =
    head.length + 2 <= column
      ? [head.padEnd(column) + text[0]!, ...text.slice(1).map((t) => pad + t)]
      : [head, ...text.map((t) => pad + t)];
  return lines.map((l) => `${l}\n`).join('');
}

/** The --backend line of a model-running command's --help, its text starting at `column`. */
export function backendHelp(column: number): string {
  return optionHelp(
    `--backend ${BACKEND_NAMES.join('|')}`,
    ['Tensor backend (default: native when built, else js)'],
    column,
  );
}

/** The --device line of a model-running command's --help, its text starting at `column`. */
export function deviceHelp(column: number): string {
  return optionHelp(
    `--device ${DEVICE_NAMES.join('|')}`,
    ['cpu (default) or cuda (an NVIDIA GPU; VERA_DEVICE=cuda sets the default)'],
    column,
  );
}

/** The --threads line of a model-running command's --help, its text starting at `column`. */
export function threadsHelp(column: number): string {
  return optionHelp('--threads N', ['Worker threads of the native backend (default: all cores)'], column);
}

/** The --dtype flag: how a model's Linear/Embedding weights are stored, and so how their GEMMs compute. */
export function dtypeFlag(value: string | undefined): 'f32' | 'bf16' {
  if (value === undefined || value === 'f32') return 'f32';
  if (value === 'bf16') return value;
  throw new Error(`--dtype must be f32 or bf16, got "${value}"`);
}

/** The --dtype lines of a model-running command's --help, its text starting at `column`. */
export function dtypeHelp(column: number): string {
  return optionHelp(
    '--dtype f32|bf16',
    [
      'bf16: the frozen Linear/Embedding weights stored in bf16 and their GEMMs',
      "computed in bf16 with f32 accumulation (torch.autocast's arithmetic): half",
      'the memory, about 2× faster GEMMs with AVX-512 BF16 or AMX (default f32)',
    ],
    column,
  );
}

/** An integer flag ≥ min; the message names the flag and the value. */
export function intFlag(name: string, value: string, min: number): number {
  const n = /^[+-]?\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got "${value}"`);
  return n;
}

/** A finite number flag accepted by `ok`; `want` says what is accepted. */
export function numberFlag(name: string, value: string, ok: (n: number) => boolean, want: string): number {
  const n = value.trim() === '' ? NaN : Number(value);
  if (!Number.isFinite(n) || !ok(n)) throw new Error(`--${name} must be ${want}, got "${value}"`);
  return n;
}

/** Writes to stdout and resolves once the chunk is handed to the OS (so process.exit loses nothing). */
export function writeOut(text: string): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(text, (e) => (e ? reject(e) : resolve())));
}

/** Progress lines go to stderr only for a person watching (a terminal) or when asked for. */
export function progressLogger(verbose: boolean): (line: string) => void {
  return verbose || process.stderr.isTTY ? (line) => process.stderr.write(`${line}\n`) : () => {};
}
