// Fuzzing the safetensors reader: valid files are mutated at random (bit flips, byte edits,
// truncations, header-length edits, and JSON edits of offsets, dtypes, shapes and keys that keep the
// header parseable so the deeper checks are reached), and each case must either load every tensor or
// throw SafetensorsError: never another error, a crash or a hang. `run()` does 100,000 cases and also
// measures load speed (F32 → f32, BF16 → f32, BF16 → bf16) on 256 MB files. test/io/fuzz.test.ts runs
// the same fuzzer on a few thousand cases.

import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '../src/backends/backend.js';
import { defaultBackend, getBackend } from '../src/backends/registry.js';
import { writeAll } from '../src/io/atomic.js';
import { SafetensorsError, SafetensorsReader, writeSafetensors } from '../src/io/safetensors.js';
import { tensor } from '../src/tensor/creation.js';
import type { DType } from '../src/backends/dtype.js';
import { type BenchRow, ROOT, emit, note } from './lib.js';

// ---- building files by hand ---------------------------------------------------------------------

/**
 * A safetensors file from a header (object or raw JSON text) and a data section. The header is padded
 * with spaces to a multiple of 8 unless `pad` is false; `headerLength` overrides the length prefix.
 */
export function rawSafetensors(
  header: string | object,
  data: Uint8Array = new Uint8Array(0),
  opts: { pad?: boolean; headerLength?: number | bigint } = {},
): Uint8Array {
  let json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  if (opts.pad !== false && json.length % 8 !== 0)
    json = Buffer.concat([json, Buffer.alloc(8 - (json.length % 8), 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(opts.headerLength ?? json.length));
  return new Uint8Array(Buffer.concat([prefix, json, data]));
}

/** Deterministic random numbers (mulberry32). */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

// ---- seeds --------------------------------------------------------------------------------------

/** Valid files: written by our writer (every engine dtype), hand-made ones (other dtypes, unaligned data) and the fixtures. */
export function fuzzSeeds(dir: string): Uint8Array[] {
  const js = getBackend('js');
  const seeds: Uint8Array[] = [];
  const write = (tensors: Record<string, ReturnType<typeof tensor>>, metadata?: Record<string, string>): void => {
    const path = join(dir, 'seed.safetensors');
    writeSafetensors(path, tensors, metadata);
    seeds.push(new Uint8Array(readFileSync(path)));
    for (const t of Object.values(tensors)) t.dispose();
  };
  write(
    {
      'w.f32': tensor([1, 2, 3, 4, 5, 6], { shape: [2, 3], backend: js }),
      'w.bf16': tensor(new Uint16Array([0x3f80, 0xc020, 0x7f80, 0x0001]), { dtype: 'bf16', shape: [4], backend: js }),
      'w.f16': tensor(new Uint16Array([0x3c00, 0x7bff, 0x8001]), { dtype: 'f16', backend: js }),
      'ids.i64': tensor(new BigInt64Array([1n, -2n, 1n << 40n]), { dtype: 'i64', backend: js }),
      'ids.i32': tensor([7, -8], { dtype: 'i32', backend: js }),
      mask: tensor([1, 0, 1], { dtype: 'bool', backend: js }),
      'x.f64': tensor([0.5, -1e300], { dtype: 'f64', backend: js }),
      scalar: tensor(new Float32Array([2.5]), { shape: [], backend: js }),
      empty: tensor(new Float32Array(0), { shape: [0, 4], backend: js }),
    },
    { format: 'pt' },
  );
  write({ only: tensor([1, 2, 3, 4], { backend: js }) });
  // Dtypes the engine does not write, and data that is not aligned to its element size.
  const data = new Uint8Array(3 + 8 + 4 + 2 + 8 + 2).map((_, i) => (i * 37 + 11) & 0xff);
  seeds.push(
    rawSafetensors(
      {
        u8: { dtype: 'U8', shape: [3], data_offsets: [0, 3] },
        f32: { dtype: 'F32', shape: [2], data_offsets: [3, 11] },
        u32: { dtype: 'U32', shape: [1], data_offsets: [11, 15] },
        i16: { dtype: 'I16', shape: [1], data_offsets: [15, 17] },
        u64: { dtype: 'U64', shape: [1], data_offsets: [17, 25] },
        f8: { dtype: 'F8_E4M3', shape: [2], data_offsets: [25, 27] },
      },
      data,
    ),
  );
  const fixtures = join(ROOT, 'test', 'io', 'fixtures');
  for (const f of ['mixed', 'small_ints', 'names', 'peft_vera']) {
    const p = join(fixtures, `${f}.safetensors`);
    if (existsSync(p)) seeds.push(new Uint8Array(readFileSync(p)));
  }
  return seeds;
}

// ---- mutations ----------------------------------------------------------------------------------

const DTYPES = [
  'F32',
  'F16',
  'BF16',
  'F64',
  'I64',
  'I32',
  'I16',
  'I8',
  'U8',
  'U16',
  'U32',
  'U64',
  'BOOL',
  'F8_E4M3',
  'F4',
  'C64',
];
const ODD_VALUES: readonly unknown[] = [
  -1,
  0,
  1,
  3,
  7,
  2 ** 31,
  2 ** 32 + 1,
  2 ** 53,
  2 ** 53 + 2,
  1e20,
  1.5,
  -0.5,
  '4',
  null,
  true,
  [],
  {},
  [1],
  [[2]],
];
const ODD_BYTES = [0x7b, 0x7d, 0x22, 0x2c, 0x3a, 0x5b, 0x5d, 0x2d, 0x39, 0x5c, 0x00, 0xff, 0xc3, 0x20, 0x0a];

interface Parts {
  n: number;
  header: Record<string, unknown>;
  data: Uint8Array;
}

function split(seed: Uint8Array): Parts | null {
  if (seed.length < 8) return null;
  const n = Number(Buffer.from(seed.buffer, seed.byteOffset, 8).readBigUInt64LE());
  try {
    const header = JSON.parse(Buffer.from(seed.subarray(8, 8 + n)).toString('utf8')) as Record<string, unknown>;
    return { n, header, data: seed.subarray(8 + n) };
  } catch {
    return null;
  }
}

/** One random structural edit of the header JSON (re-serialized with a correct length prefix). */
function editJson(p: Parts, rng: Rng): Uint8Array {
  const h = structuredClone(p.header);
  const names = Object.keys(h).filter((k) => k !== '__metadata__');
  const name = names.length > 0 ? rng.pick(names) : 'x';
  const e = (typeof h[name] === 'object' && h[name] !== null ? h[name] : {}) as Record<string, unknown>;
  h[name] = e;
  const offs = Array.isArray(e['data_offsets']) ? (e['data_offsets'] as unknown[]) : [0, 0];
  const shape = Array.isArray(e['shape']) ? (e['shape'] as unknown[]) : [];
  let data = p.data;
  switch (rng.int(15)) {
    case 0:
      offs[rng.int(2)] = (offs[rng.int(2)] as number) + rng.pick([-8, -4, -2, -1, 1, 2, 4, 8]);
      break;
    case 1:
      offs[rng.int(2)] = rng.pick(ODD_VALUES);
      break;
    case 2:
      e['data_offsets'] = rng.pick([[offs[1], offs[0]], [0], [0, 0, 0], 'x', null, [offs[0], offs[1], 1]]);
      break;
    case 3:
      e['dtype'] = rng.pick([...DTYPES, 'f32', 'Q4', '', 3, null]);
      break;
    case 4:
      shape[rng.int(shape.length + 1)] = rng.pick(ODD_VALUES);
      e['shape'] = shape;
      break;
    case 5:
      e['shape'] = rng.next() < 0.5 ? [...shape, rng.pick([0, 1, 2, 3])] : shape.slice(1);
      break;
    case 6:
      delete e[rng.pick(['dtype', 'shape', 'data_offsets'])];
      break;
    case 7:
      h[name] = rng.pick(ODD_VALUES);
      break;
    case 8:
      h['__metadata__'] = rng.pick([{ a: 1 }, ['x'], 'pt', null, { format: 'pt' }, { k: null }]);
      break;
    case 9: {
      // Another tensor placed where it overlaps or leaves a hole.
      const at = rng.int(p.data.length + 4);
      h[`extra${rng.int(3)}`] = { dtype: 'U8', shape: [rng.int(5)], data_offsets: [at, at + rng.int(5)] };
      break;
    }
    case 10:
      data = data.subarray(0, Math.max(0, data.length - 1 - rng.int(8)));
      break;
    case 11:
      data = new Uint8Array(Buffer.concat([data, Buffer.alloc(1 + rng.int(8), 7)]));
      break;
    case 12: {
      // Two tensors swap their ranges (shapes no longer match unless they happen to).
      const other = h[rng.pick(names.length > 0 ? names : ['x'])] as Record<string, unknown> | undefined;
      if (other && typeof other === 'object')
        [e['data_offsets'], other['data_offsets']] = [other['data_offsets'], offs];
      break;
    }
    case 13: {
      // A value nested thousands deep, written as text (deep values must not overflow the stack).
      const depth = 1 + rng.int(20_000);
      const deep = `${'['.repeat(depth)}${']'.repeat(depth)}`;
      const json = JSON.stringify(h);
      return rawSafetensors(
        `{"deep":${rng.next() < 0.5 ? deep : `{"dtype":"F32","shape":${deep}}`},${json.slice(1)}`,
        data,
      );
    }
    default: {
      // A duplicate key, written as text since objects cannot hold one.
      const json = JSON.stringify(h);
      const dup = `${JSON.stringify(name)}:${JSON.stringify(e)},`;
      return rawSafetensors(`{${dup}${json.slice(1)}`, data);
    }
  }
  return rawSafetensors(h, data, { pad: rng.next() < 0.9 });
}

const SAME_WIDTH: readonly (readonly string[])[] = [
  ['F32', 'I32', 'U32'],
  ['BF16', 'F16', 'I16', 'U16'],
  ['F64', 'I64', 'U64', 'C64'],
  ['U8', 'I8', 'BOOL', 'F8_E4M3', 'F8_E5M2'],
];

/** An edit that keeps the file valid: another dtype of the same width, a reshape, entries reordered. */
function benignEdit(p: Parts, rng: Rng): Uint8Array {
  const keys = Object.keys(p.header);
  const h: Record<string, unknown> = {};
  for (const k of rng.next() < 0.5 ? [...keys].reverse() : keys) h[k] = p.header[k];
  const names = keys.filter((k) => k !== '__metadata__');
  if (names.length > 0) {
    const name = rng.pick(names);
    const e = { ...(h[name] as Record<string, unknown>) };
    const group = SAME_WIDTH.find((g) => g.includes(e['dtype'] as string));
    if (group && rng.next() < 0.5) e['dtype'] = rng.pick(group);
    else {
      const numel = (e['shape'] as number[]).reduce((a, b) => a * b, 1);
      e['shape'] = rng.pick([[numel], [1, numel], [numel, 1]]);
    }
    h[name] = e;
  }
  return rawSafetensors(h, p.data);
}

/** One to three random mutations of a valid file (one most of the time; sometimes only a benign edit). */
export function mutate(seed: Uint8Array, rng: Rng): Uint8Array {
  if (rng.next() < 0.15) {
    const p = split(seed);
    if (p) return benignEdit(p, rng);
  }
  let b = seed;
  const u = rng.next();
  const rounds = u < 0.6 ? 1 : u < 0.9 ? 2 : 3;
  for (let r = 0; r < rounds; r++) b = mutateOnce(b, rng);
  return b;
}

function mutateOnce(seed: Uint8Array, rng: Rng): Uint8Array {
  const b = new Uint8Array(seed);
  const declared = b.length >= 8 ? Number(Buffer.from(b.buffer, b.byteOffset, 8).readBigUInt64LE() % 2n ** 40n) : 0;
  const headerEnd = Math.min(b.length, 8 + declared);
  const inHeader = (): number =>
    headerEnd > 8 && rng.next() < 0.8 ? 8 + rng.int(headerEnd - 8) : rng.int(Math.max(1, b.length));
  switch (rng.int(8)) {
    case 0: {
      const i = inHeader();
      if (i < b.length) b[i]! ^= 1 << rng.int(8);
      return b;
    }
    case 1: {
      const i = inHeader();
      if (i < b.length) b[i] = rng.pick(ODD_BYTES);
      return b;
    }
    case 2:
      return b.subarray(0, rng.int(b.length + 1));
    case 3: {
      if (b.length < 8) return b;
      const n = Number(Buffer.from(b.buffer, b.byteOffset, 8).readBigUInt64LE() % 2n ** 52n);
      const v = rng.pick([n + 1, n - 1, n + 8, n - 8, 0, b.length, b.length - 8, 100_000_001, 2 ** 32 + n, 2 ** 53]);
      Buffer.from(b.buffer, b.byteOffset, 8).writeBigUInt64LE(BigInt(Math.max(0, v)));
      return b;
    }
    case 4: {
      // Insert or delete a header byte without fixing the length prefix.
      const i = inHeader();
      return rng.next() < 0.5
        ? new Uint8Array(Buffer.concat([b.subarray(0, i), Buffer.from([rng.pick(ODD_BYTES)]), b.subarray(i)]))
        : new Uint8Array(Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]));
    }
    default: {
      const p = split(b);
      try {
        return p ? editJson(p, rng) : b;
      } catch {
        return b; // structuredClone/JSON.stringify cannot copy a header nested thousands deep: keep it as is
      }
    }
  }
}

// ---- the fuzz loop ------------------------------------------------------------------------------

export interface FuzzStats {
  cases: number;
  /** Cases whose header was accepted by open(). */
  opened: number;
  /** Tensors read successfully (from the opened cases). */
  tensorsLoaded: number;
  /** SafetensorsErrors naming the file: from open() or from reading a tensor. */
  safetensorsErrors: number;
  /** Errors of any other type, or not naming the file: each is a bug. */
  otherErrors: number;
  examples: string[];
  seconds: number;
  maxCaseMs: number;
}

const TARGETS: readonly (DType | undefined)[] = [
  undefined,
  undefined,
  undefined,
  'bf16',
  'f16',
  'f64',
  'i64',
  'i32',
  'bool',
];

/** Runs `cases` mutated files (stopping early after `budgetMs`); the path of each case is reused. */
export function fuzz(opts: { cases: number; seed?: number; dir: string; budgetMs?: number }): FuzzStats {
  const backend = getBackend('js');
  const seeds = fuzzSeeds(opts.dir);
  const rng = new Rng(opts.seed ?? 1);
  const path = join(opts.dir, 'case.safetensors');
  const stats: FuzzStats = {
    cases: 0,
    opened: 0,
    tensorsLoaded: 0,
    safetensorsErrors: 0,
    otherErrors: 0,
    examples: [],
    seconds: 0,
    maxCaseMs: 0,
  };
  /** Runs one step of a case; counts its error (if any) and says whether it succeeded. */
  const attempt = (i: number, bytes: Uint8Array, step: () => void): boolean => {
    try {
      step();
      return true;
    } catch (e) {
      if (e instanceof SafetensorsError && e.message.includes(path)) stats.safetensorsErrors++;
      else {
        stats.otherErrors++;
        if (stats.examples.length < 5) {
          const kind = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
          stats.examples.push(`case ${i}: ${kind} (file: ${Buffer.from(bytes).toString('base64').slice(0, 400)})`);
        }
      }
      return false;
    }
  };
  const t0 = performance.now();
  for (let i = 0; i < opts.cases; i++) {
    if (opts.budgetMs !== undefined && performance.now() - t0 > opts.budgetMs) break;
    const bytes = mutate(rng.pick(seeds), rng);
    writeFileSync(path, bytes);
    const c0 = performance.now();
    let r: SafetensorsReader | null = null;
    if (attempt(i, bytes, () => (r = SafetensorsReader.open(path)))) {
      stats.opened++;
      const reader = r!;
      for (const name of reader.names()) {
        const ok = attempt(i, bytes, () => {
          reader.info(name);
          reader.tensor(name, { backend, dtype: rng.pick(TARGETS) }).dispose();
          if (rng.next() < 0.2) reader.bytes(name);
        });
        if (ok) stats.tensorsLoaded++;
      }
      reader.close();
    }
    stats.maxCaseMs = Math.max(stats.maxCaseMs, performance.now() - c0);
    stats.cases++;
  }
  stats.seconds = (performance.now() - t0) / 1000;
  return stats;
}

// ---- load speed ---------------------------------------------------------------------------------

/** Writes a file of `count` tensors of `elements` elements each, streaming pseudo-random data (no big allocation). */
export function writeBigFile(path: string, dtype: 'F32' | 'BF16', count: number, elements: number): number {
  const size = dtype === 'F32' ? 4 : 2;
  const header: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) {
    const begin = i * elements * size;
    header[`layers.${i}.weight`] = {
      dtype,
      shape: [elements / 1024, 1024],
      data_offsets: [begin, begin + elements * size],
    };
  }
  const head = rawSafetensors(header);
  const fd = openSync(path, 'w');
  try {
    writeAll(fd, head);
    const block = new Uint16Array(1 << 20);
    let s = 12345;
    for (let i = 0; i < block.length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      block[i] = dtype === 'BF16' ? 0x3c00 + (s >>> 24) : s >>> 16; // bf16 values in [2^-7, 2^-6) · sign-free
    }
    const bytes = new Uint8Array(block.buffer);
    let left = count * elements * size;
    while (left > 0) {
      const n = Math.min(left, bytes.length);
      writeAll(fd, bytes.subarray(0, n));
      left -= n;
    }
  } finally {
    closeSync(fd);
  }
  return head.length + count * elements * size;
}

/** MB/s (file bytes) loading every tensor of `path` as `dtype`, best of `runs`. */
export function loadSpeed(path: string, bytes: number, dtype: DType, backend: Backend, runs = 3): number {
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    const reader = SafetensorsReader.open(path);
    const ts = reader.names().map((n) => reader.tensor(n, { backend, dtype }));
    const ms = performance.now() - t0;
    for (const t of ts) t.dispose();
    reader.close();
    best = Math.min(best, ms);
  }
  return bytes / 1e6 / (best / 1000);
}

export async function run(): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'vera-st-fuzz-'));
  const rows: BenchRow[] = [];
  try {
    note('safetensors fuzz: 100000 cases');
    const s = fuzz({ cases: 100_000, seed: 20240601, dir });
    for (const ex of s.examples) note(ex);
    rows.push(
      emit({
        bench: 'safetensors-fuzz',
        case: `${s.cases} mutated files`,
        ours: s.cases / s.seconds,
        peer: null,
        peer_name: '',
        unit: 'cases/s',
        crashes: 0,
        non_safetensors_errors: s.otherErrors,
        opened: s.opened,
        tensors_loaded: s.tensorsLoaded,
        safetensors_errors: s.safetensorsErrors,
        max_case_ms: s.maxCaseMs,
      }),
    );
    const backend = defaultBackend();
    const f32 = join(dir, 'f32.safetensors');
    const bf16 = join(dir, 'bf16.safetensors');
    const f32Bytes = writeBigFile(f32, 'F32', 16, 4 << 20); // 256 MB
    const bf16Bytes = writeBigFile(bf16, 'BF16', 16, 8 << 20); // 256 MB
    for (const [label, path, bytes, dtype] of [
      ['F32 → f32', f32, f32Bytes, 'f32'],
      ['BF16 → f32', bf16, bf16Bytes, 'f32'],
      ['BF16 → bf16', bf16, bf16Bytes, 'bf16'],
    ] as const) {
      rows.push(
        emit({
          bench: 'safetensors-load',
          case: `256 MB ${label} (16 tensors, page cache warm, ${backend.name} backend)`,
          ours: loadSpeed(path, bytes, dtype, backend),
          peer: null,
          peer_name: '',
          unit: 'MB/s',
        }),
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

// Run directly: node dist/bench/safetensors-fuzz.js
if (process.argv[1]?.endsWith('safetensors-fuzz.js')) await run();
