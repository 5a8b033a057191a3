// What every `vera` subcommand shares: one-line argument errors, flags spelled with dashes or
// underscores alike, --backend/--device/--threads, integer and number flags, stdout writes and an exit
// that lose nothing (also through a pipe), progress lines.

import { type ParseArgsConfig, parseArgs as nodeParseArgs } from 'node:util';
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

/** A flag's spelling-free key: dashes and underscores are one character (`max-new-tokens` = `max_new_tokens`). */
export function flagKey(name: string): string {
  return name.replaceAll('-', '_');
}

/**
 * node:util's parseArgs (same config, same result), except that every declared long option is also
 * accepted in its other spelling: a command declares `max_new_tokens` (or `max-batch`) once and takes
 * both `--max_new_tokens` and `--max-new-tokens`, also as `--flag=value`. The result's keys are the
 * declared names. Values are left alone (the text after a string option is never rewritten), and so is
 * everything after `--`.
 */
export function parseArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof nodeParseArgs<T>> {
  const options = config.options ?? {};
  const declared = new Map<string, string>();
  for (const name of Object.keys(options)) {
    const other = declared.get(flagKey(name));
    if (other !== undefined) throw new Error(`options "${other}" and "${name}" are one flag spelled two ways`);
    declared.set(flagKey(name), name);
  }
  const shortString = new Set(
    Object.values(options)
      .filter((o) => o.type === 'string' && o.short !== undefined)
      .map((o) => `-${o.short}`),
  );
  const given = config.args ?? process.argv.slice(2);
  const args: string[] = [];
  for (let i = 0; i < given.length; i++) {
    const arg = given[i]!;
    if (arg === '--') {
      args.push(...given.slice(i));
      break;
    }
    const m = /^--([^=]+)(=[\s\S]*)?$/.exec(arg);
    const name = m ? declared.get(flagKey(m[1]!)) : undefined;
    if (m && name !== undefined) {
      args.push(`--${name}${m[2] ?? ''}`);
      if (m[2] === undefined && options[name]!.type === 'string' && i + 1 < given.length) args.push(given[++i]!);
      continue;
    }
    args.push(arg);
    if (shortString.has(arg) && i + 1 < given.length) args.push(given[++i]!);
  }
  return nodeParseArgs({ ...config, args }) as ReturnType<typeof nodeParseArgs<T>>;
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

/**
 * Resolves once everything written to `stream` so far is handed to the OS. A pipe takes 64 KiB at a
 * time, and node queues the rest; process.exit drops that queue, so a pipe reader would get the first
 * 65,536 bytes only. A stream that failed (the reader went away) resolves too.
 */
export function flushed(stream: NodeJS.WritableStream & { writableLength?: number }): Promise<void> {
  if (stream.writableLength === 0) return Promise.resolve();
  // Write callbacks run in order, so this one runs once every earlier write is done.
  return new Promise((resolve) => stream.write('', () => resolve()));
}

/** Exits with `code` once stdout and stderr are flushed (every command ends here). */
export async function exitFlushed(code: number): Promise<never> {
  process.exitCode = code;
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
}

/** Progress lines go to stderr only for a person watching (a terminal) or when asked for. */
export function progressLogger(verbose: boolean): (line: string) => void {
  return verbose || process.stderr.isTTY ? (line) => process.stderr.write(`${line}\n`) : () => {};
}
