// Helpers shared by the benchmarks (bench/*.ts). A bench module exports `run(): Promise<BenchRow[]>`,
// measures "ours" (this engine) and, when it can, a "peer" (oneDNN, PyTorch, ...) on the same case,
// prints each row with emit() as soon as it is measured, and returns the rows; bench/run.ts collects
// them into BENCHMARKS.md.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One measurement: ours and the peer's number in `unit` (null when that side could not run). */
export interface BenchRow {
  bench: string;
  case: string;
  ours: number | null;
  peer: number | null;
  peer_name: string;
  unit: string;
  [extra: string]: unknown;
}

/** The repository root (the directory holding package.json), from src or from dist. */
export const ROOT: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bench'))) return dir;
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
})();

/** Prints the row as one JSON line, the keys bench, case, ours, peer, peer_name, unit first; returns it. */
export function emit(row: BenchRow): BenchRow {
  const { bench, case: name, ours, peer, peer_name, unit, ...extra } = row;
  for (const [key, value] of Object.entries(extra)) {
    if (typeof value === 'number' && !Number.isInteger(value)) extra[key] = round(value);
  }
  const ordered: BenchRow = { bench, case: name, ours: round(ours), peer: round(peer), peer_name, unit, ...extra };
  console.log(JSON.stringify(ordered));
  return ordered;
}

function round(x: number | null): number | null {
  if (x === null || !Number.isFinite(x)) return null;
  return Number(x.toPrecision(5));
}

/** Progress and diagnostics go to stderr so stdout carries only JSON lines. */
export function note(msg: string): void {
  console.error(`[bench] ${msg}`);
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h]! : 0.5 * (s[h - 1]! + s[h]!);
}

export interface Timing {
  median_ms: number;
  min_ms: number;
  runs: number;
  samples_ms: number[];
}

/** Times fn (sync or async): `warmup` untimed calls, then `runs` timed ones (at least 7); the median. */
export async function timeIt(fn: () => unknown, opts: { warmup?: number; runs?: number } = {}): Promise<Timing> {
  const warmup = opts.warmup ?? 2;
  const runs = Math.max(7, opts.runs ?? 9);
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  return { median_ms: median(samples), min_ms: Math.min(...samples), runs, samples_ms: samples };
}

export type PeerResult = { ok: true; lines: Record<string, unknown>[] } | { ok: false; lines: null; reason: string };

/**
 * Runs a peer program and parses the JSON objects it prints, one a line (other lines are ignored).
 * Never throws: when the peer is missing, fails, or prints no JSON, returns the reason instead.
 */
export function runPeer(
  cmd: string,
  args: readonly string[],
  env: Record<string, string> = {},
  timeoutMs = 20 * 60_000,
): PeerResult {
  const r = spawnSync(cmd, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 << 20,
  });
  const label = [cmd, ...args].join(' ');
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? `${cmd} not found` : r.error.message;
    return { ok: false, lines: null, reason: `${label}: ${why}` };
  }
  if (r.status !== 0) {
    const tail = lastLine(r.stderr) || lastLine(r.stdout);
    return { ok: false, lines: null, reason: `${label}: exit ${r.status ?? r.signal}${tail ? `: ${tail}` : ''}` };
  }
  const lines: Record<string, unknown>[] = [];
  for (const line of r.stdout.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(t) as Record<string, unknown>);
    } catch {
      // not JSON: ignore
    }
  }
  if (lines.length === 0) return { ok: false, lines: null, reason: `${label}: printed no JSON line` };
  return { ok: true, lines };
}

function lastLine(s: string | null | undefined): string {
  const lines = (s ?? '').trim().split('\n');
  return (lines[lines.length - 1] ?? '').trim().slice(0, 300);
}

/**
 * Compiles a C/C++ peer into build/bench/<name> unless the binary is newer than its source; returns the
 * binary's path, or the reason it could not be built.
 */
export function buildPeerBinary(
  source: string,
  name: string,
  flags: readonly string[],
): { ok: true; path: string } | { ok: false; reason: string } {
  const src = resolve(ROOT, source);
  const out = join(ROOT, 'build', 'bench', name);
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(src).mtimeMs) return { ok: true, path: out };
  mkdirSync(dirname(out), { recursive: true });
  const cxx = process.env['CXX'] ?? 'g++';
  const args = [
    ...flags.filter((f) => !f.startsWith('-l')),
    src,
    '-o',
    out,
    ...flags.filter((f) => f.startsWith('-l')),
  ];
  note(`building ${name}: ${cxx} ${args.join(' ')}`);
  const r = spawnSync(cxx, args, { cwd: ROOT, encoding: 'utf8' });
  if (r.error) return { ok: false, reason: `${cxx}: ${r.error.message}` };
  if (r.status !== 0) return { ok: false, reason: `${cxx} failed: ${lastLine(r.stderr)}` };
  return { ok: true, path: out };
}

export interface CpuInfo {
  model: string;
  /** Logical CPUs available to this process. */
  cores: number;
  avx512f: boolean;
  avx2: boolean;
  memGiB: number;
  /** One line for reports: model, cores, SIMD, memory, OS, Node. */
  summary: string;
}

export function cpuInfo(): CpuInfo {
  let text = '';
  try {
    text = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // not Linux
  }
  const model = /^model name\s*:\s*(.+)$/m.exec(text)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown CPU';
  const flags = new Set((/^flags\s*:\s*(.+)$/m.exec(text)?.[1] ?? '').split(/\s+/));
  const cores = availableParallelism();
  const avx512f = flags.has('avx512f');
  const avx2 = flags.has('avx2');
  const memGiB = Math.round((totalmem() / 2 ** 30) * 10) / 10;
  // The bf16 units oneDNN's bf16 GEMMs use: AMX tiles, else AVX-512 BF16 dot products.
  const bf16 = flags.has('amx_bf16') ? ' + AMX' : flags.has('avx512_bf16') ? ' BF16' : '';
  const simd = avx512f ? `AVX-512${bf16}` : avx2 ? 'AVX2' : 'no AVX2';
  const summary = `${model}, ${cores} logical CPUs, ${simd}, ${memGiB} GiB RAM, ${process.platform} ${release()}, Node ${process.version}`;
  return { model, cores, avx512f, avx2, memGiB, summary };
}

/** OpenBLAS core type matching this CPU (Debian's OpenBLAS misdetects recent CPUs as a slow generic one). */
export function openblasCoretype(): string | null {
  const info = cpuInfo();
  if (info.avx512f) return 'SkylakeX';
  if (info.avx2) return 'Haswell';
  return null;
}

/** Environment for a peer limited to `threads` threads (OpenMP, OpenBLAS, MKL), OpenBLAS at its best. */
export function threadEnv(threads: number): Record<string, string> {
  const env: Record<string, string> = {
    OMP_NUM_THREADS: String(threads),
    OPENBLAS_NUM_THREADS: String(threads),
    MKL_NUM_THREADS: String(threads),
  };
  const core = openblasCoretype();
  if (core) env['OPENBLAS_CORETYPE'] = core;
  return env;
}

/** Debian's python with python3-torch (the pyenv python3 on PATH has no torch); VERA_PEER_PYTHON overrides. */
export const PEER_PYTHON: string = process.env['VERA_PEER_PYTHON'] ?? '/usr/bin/python3';

/** Whether a unit's numbers are better when higher (throughputs: "…/s") or lower (times, sizes). */
export function higherIsBetter(unit: string): boolean {
  return /\/s$/i.test(unit) || /^(tok|tokens|samples|steps|it)\b/i.test(unit);
}

/**
 * Runs a PyTorch peer script (bench/peers/*.py) with Debian's python on `threads` threads: the thread
 * counts and OPENBLAS_CORETYPE come from threadEnv(); the script itself selects Debian's OpenMP build
 * of OpenBLAS when installed (see configure() in bench/peers/torch_gpt2_step.py).
 */
export function runTorchPeer(script: string, threads: number, args: readonly string[] = []): PeerResult {
  return runPeer(PEER_PYTHON, [script, String(threads), ...args], threadEnv(threads));
}
