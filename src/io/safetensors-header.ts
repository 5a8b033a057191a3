// Parsing and validating a safetensors header (the 8-byte length and the JSON that follows) without
// touching tensor data. Checks follow safetensors' own reader (safetensors/src/tensor.rs) and add what
// JSON.parse hides: duplicate keys are rejected, names keep their header order.

import { fmtShape } from '../tensor/errors.js';
import { SafetensorsError } from './errors.js';
import { parseJsonText } from './json.js';
import { scanObjectKeys } from './json-keys.js';
import { dtypeBits } from './safetensors-dtype.js';

/** safetensors' MAX_HEADER_SIZE. */
export const MAX_HEADER_SIZE = 100_000_000;

export interface TensorEntry {
  dtype: string;
  shape: number[];
  /** Byte range in the data section (which starts right after the header). */
  begin: number;
  end: number;
  numel: number;
}

export interface ParsedHeader {
  metadata: Record<string, string>;
  /** Tensors in header order. */
  entries: Map<string, TensorEntry>;
}

/** Throws a SafetensorsError `[safetensors] file: tensor "name": msg`. */
export function fail(file: string, msg: string, tensor?: string): never {
  const where = tensor === undefined ? '' : `tensor ${quote(tensor)}: `;
  throw new SafetensorsError(`[safetensors] ${file}: ${where}${msg}`, { file, tensor });
}

/** A name in quotes, escaped (names come from untrusted files). */
export function quote(name: string): string {
  const q = JSON.stringify(name);
  return q.length > 202 ? `${q.slice(0, 200)}…"` : q;
}

/** Validates the 8-byte little-endian header length against safetensors' limit and the file size. */
export function headerLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8) fail(file, `file has ${fileSize} bytes, fewer than the 8-byte header length`);
  const dv = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  const n = hi * 2 ** 32 + lo; // exact below 2^53, and anything ≥ 2^32 is rejected just below
  if (n > MAX_HEADER_SIZE)
    fail(
      file,
      `header length ${hi === 0 ? n : 'of 2^32 bytes or more'} exceeds safetensors' limit of ${MAX_HEADER_SIZE} bytes`,
    );
  if (8 + n > fileSize) fail(file, `header length ${n} runs past the end of the file (${fileSize} bytes)`);
  return n;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Parses and validates the header JSON; `dataLength` is the size of the data section that follows it. */
export function parseHeader(bytes: Uint8Array, dataLength: number, file: string): ParsedHeader {
  if (bytes.length === 0 || bytes[0] !== 0x7b)
    fail(
      file,
      `header must start with '{', found ${bytes.length === 0 ? 'nothing' : `byte 0x${bytes[0]!.toString(16)}`}`,
    );
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    fail(file, 'header is not valid UTF-8');
  }
  let root: unknown;
  try {
    root = parseJsonText(text, file, 'safetensors');
  } catch (e) {
    throw new SafetensorsError(`${(e as Error).message} (in the header)`, { file, cause: e });
  }
  if (!isObject(root)) fail(file, 'header must be a JSON object');
  const scan = scanObjectKeys(text);
  if (scan.duplicate) {
    const { key, path } = scan.duplicate;
    if (path.length === 0) fail(file, `header has the key ${quote(key)} twice (duplicate keys are not allowed)`);
    if (path[0] === '__metadata__')
      fail(file, `__metadata__ has the key ${quote(key)} twice (duplicate keys are not allowed)`);
    fail(file, `entry has the field ${quote(key)} twice (duplicate keys are not allowed)`, path[0]);
  }
  let metadata: Record<string, string> = {};
  const entries = new Map<string, TensorEntry>();
  for (const name of scan.topKeys) {
    const value = own(root, name);
    if (name === '__metadata__') metadata = checkMetadata(value, file);
    else entries.set(name, checkEntry(name, value, dataLength, file));
  }
  checkTiling(entries, dataLength, file);
  return { metadata, entries };
}

function checkMetadata(value: unknown, file: string): Record<string, string> {
  if (value === null) return {}; // safetensors reads a null __metadata__ as absent
  if (!isObject(value)) fail(file, `__metadata__ must be an object of strings, got ${snippet(value)}`);
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') fail(file, `__metadata__ must map strings to strings, but ${quote(k)} is ${snippet(v)}`);
  }
  return value as Record<string, string>;
}

function checkEntry(name: string, value: unknown, dataLength: number, file: string): TensorEntry {
  const bad = (msg: string): never => fail(file, msg, name);
  if (!isObject(value)) bad(`entry must be an object with dtype, shape and data_offsets, got ${snippet(value)}`);
  const v = value as Record<string, unknown>;
  for (const field of ['dtype', 'shape', 'data_offsets']) if (!Object.hasOwn(v, field)) bad(`entry has no "${field}"`);

  const dtype = v['dtype'];
  if (typeof dtype !== 'string') bad(`"dtype" must be a string, got ${snippet(dtype)}`);
  const bits = dtypeBits(dtype as string);
  if (bits === undefined) bad(`unknown dtype ${quote(dtype as string)}`);

  const shape = v['shape'];
  if (!Array.isArray(shape)) bad(`"shape" must be an array of integers, got ${snippet(shape)}`);
  const dims = shape as unknown[];
  dims.forEach((d, i) => {
    if (!isIndex(d)) bad(`"shape" ${snippet(shape)}: dimension ${i} is ${snippet(d)}, not a non-negative integer`);
  });

  const offs = v['data_offsets'];
  if (!Array.isArray(offs) || offs.length !== 2 || !isIndex(offs[0]) || !isIndex(offs[1]))
    bad(`"data_offsets" must be two non-negative integers [begin, end], got ${snippet(offs)}`);
  const [begin, end] = offs as [number, number];
  if (begin > end) bad(`data_offsets [${begin}, ${end}] end before they begin`);

  const numel = countElements(dims as number[]);
  const nbits = numel === null ? null : numel * bits!;
  const dt = (): string => `${dtype as string} ${fmtShape(dims as number[])}`;
  if (numel === null || nbits === null || !Number.isSafeInteger(nbits)) bad(`${dt()} has too many elements (overflow)`);
  if (nbits! % 8 !== 0) bad(`${dt()} holds ${nbits} bits, not a whole number of bytes`);
  const nbytes = nbits! / 8;
  if (end - begin !== nbytes)
    bad(`data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dt()} needs ${nbytes}`);
  if (end > dataLength)
    bad(`data_offsets [${begin}, ${end}] run past the end of the data section (${dataLength} bytes)`);
  return { dtype: dtype as string, shape: dims as number[], begin, end, numel: numel! };
}

/** Tensors must tile the data section exactly: sorted by offset, each starts where the previous ended. */
function checkTiling(entries: Map<string, TensorEntry>, dataLength: number, file: string): void {
  const sorted = [...entries].sort(([, a], [, b]) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let prev: string | null = null;
  for (const [name, e] of sorted) {
    if (e.begin < at) {
      const p = entries.get(prev!)!;
      fail(file, `data_offsets [${e.begin}, ${e.end}] overlap tensor ${quote(prev!)} at [${p.begin}, ${p.end}]`, name);
    }
    if (e.begin > at) {
      const after = prev === null ? 'at the start of the data section' : `between ${quote(prev)} and ${quote(name)}`;
      fail(file, `bytes [${at}, ${e.begin}) ${after} belong to no tensor (tensors must be contiguous)`, name);
    }
    at = e.end;
    prev = name;
  }
  if (at !== dataLength) {
    const where = prev === null ? 'the header declares no tensors, but' : `after the last tensor ${quote(prev)},`;
    fail(file, `${where} bytes [${at}, ${dataLength}) of the data section belong to no tensor`);
  }
}

/** Product of the dims, or null when it exceeds 2^53 (checked step by step, as safetensors does). */
function countElements(dims: readonly number[]): number | null {
  let n = 1;
  for (const d of dims) {
    n *= d;
    if (!Number.isSafeInteger(n)) return null;
  }
  return n;
}

function isIndex(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** An own property (a parsed "__proto__" key is an own data property, which plain access returns). */
function own(obj: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/** A short JSON rendering of an offending value (depth-limited: headers can nest arbitrarily deep). */
function snippet(x: unknown): string {
  const s = shortJson(x, 3);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function shortJson(x: unknown, depth: number): string {
  if (x === undefined) return 'undefined';
  if (typeof x !== 'object' || x === null) return JSON.stringify(x);
  if (depth === 0) return Array.isArray(x) ? '[...]' : '{...}';
  const items = Array.isArray(x)
    ? x.slice(0, 8).map((v) => shortJson(v, depth - 1))
    : Object.entries(x)
        .slice(0, 8)
        .map(([k, v]) => `${JSON.stringify(k)}:${shortJson(v, depth - 1)}`);
  const more = (Array.isArray(x) ? x.length : Object.keys(x).length) > 8 ? ',...' : '';
  return Array.isArray(x) ? `[${items.join(',')}${more}]` : `{${items.join(',')}${more}}`;
}
