// What every `vera` subcommand shares: one-line argument errors, --backend/--threads, integer and
// number flags, dash/underscore flag spellings, stdout writes that survive process.exit, progress lines.

import { BACKEND_CHOICES, defaultBackend, getBackend, isBackendName, setDefaultBackend } from '../backends/registry.js';

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

/** Applies --backend and --threads before any tensor is made. */
export function selectBackend(backend: string | undefined, threads: string | undefined): void {
  if (backend !== undefined) {
    if (!isBackendName(backend)) throw new Error(`--backend must be ${BACKEND_CHOICES}, got "${backend}"`);
    setDefaultBackend(getBackend(backend));
  }
  // A backend without a worker pool (no setThreads) ignores the flag, as the js backend always has.
  if (threads !== undefined) defaultBackend().setThreads?.(intFlag('threads', threads, 1));
}

/** The --dtype flag: how a model's Linear/Embedding weights are stored, and so how their GEMMs compute. */
export function dtypeFlag(value: string | undefined): 'f32' | 'bf16' {
  if (value === undefined || value === 'f32') return 'f32';
  if (value === 'bf16') return value;
  throw new Error(`--dtype must be f32 or bf16, got "${value}"`);
}

/** The --dtype lines of a model-running command's --help, its text starting at `column`. */
export function dtypeHelp(column: number): string {
  const text = [
    'bf16: the frozen Linear/Embedding weights stored in bf16 and their GEMMs',
    "computed in bf16 with f32 accumulation (torch.autocast's arithmetic): half",
    'the memory, about 2× faster GEMMs with AVX-512 BF16 or AMX (default f32)',
  ];
  return text.map((t, i) => `${(i === 0 ? '  --dtype f32|bf16' : '').padEnd(column)}${t}\n`).join('');
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
