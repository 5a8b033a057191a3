// Reading and writing .safetensors files (Hugging Face's tensor format). The reader validates the whole
// header on open and reads each tensor's byte range on demand through a file descriptor, a chunk at a
// time, so loading needs the tensors' memory plus a few MB, never a second copy of the file. The writer
// lays files out exactly as Python's safetensors does and replaces the target atomically.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { Backend, BackendBuffer, View } from '../backends/backend.js';
import { defaultBackend } from '../backends/registry.js';
import { DTYPE_BYTES, type DType, type HostArray } from '../backends/dtype.js';
import { Storage } from '../tensor/storage.js';
import { Tensor } from '../tensor/tensor.js';
import { writeAll, writeAtomically } from './atomic.js';
import { decodeChunk, releaseDecodeScratch, ValueRangeError } from './decode.js';
import { IoError, SafetensorsError, describeError } from './errors.js';
import {
  type SafetensorsDType,
  canLoadAs,
  defaultEngineDType,
  dtypeBits,
  dtypeOrder,
  fileDType,
} from './safetensors-dtype.js';
import { type TensorEntry, fail, headerLength, parseHeader, quote } from './safetensors-header.js';
import { didYouMean } from './suggest.js';

export { SafetensorsError } from './errors.js';
export type { SafetensorsDType } from './safetensors-dtype.js';

/** Where a tensor lives in a file: its dtype, shape and byte range in the data section. */
export interface SafetensorsInfo {
  dtype: SafetensorsDType;
  shape: number[];
  dataOffsets: [number, number];
}

export interface LoadOpts {
  backend?: Backend;
  /**
   * Engine dtype to load as. Default: F32/F16/BF16/F64 → 'f32', integers → 'i32' (values beyond int32
   * are an error), BOOL → 'bool'. 'bf16'/'f16' keep half-precision data as stored, 'i64' keeps I64.
   */
  dtype?: DType;
}

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1)
  throw new Error('[safetensors] This reader assumes a little-endian host, as safetensors files are little-endian');

/** Elements per read: bounds the transient memory of a load (≤ 8 MB read buffer + ≤ 8 MB converted). */
const CHUNK_ELEMENTS = 1 << 20;
/** File dtypes whose bytes are an engine dtype's as they are (little-endian host): read without decoding. */
const RAW_AS: Partial<Record<string, DType>> = { F32: 'f32', BF16: 'bf16', F16: 'f16', I32: 'i32', F64: 'f64' };
const isFloat = (d: DType) => d === 'f32' || d === 'bf16' || d === 'f16' || d === 'f64';
/** Bytes per readSync call for raw reads (Node caps one read at 2 GB). */
const MAX_READ = 1 << 30;

let chunkBuffer: Uint8Array | null = null;
function chunk(bytes: number): Uint8Array {
  if (!chunkBuffer || chunkBuffer.length < bytes) chunkBuffer = new Uint8Array(Math.max(bytes, 1 << 16));
  return chunkBuffer.subarray(0, bytes);
}

/** Closes the descriptors of readers that were dropped without close(). */
const orphanedFds = new FinalizationRegistry<number>((fd) => {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
});

export class SafetensorsReader {
  readonly path: string;
  readonly metadata: Record<string, string>;
  #fd: number | null;
  readonly #entries: Map<string, TensorEntry>;
  /** File offset of the data section (8 + header length). */
  readonly #dataStart: number;

  private constructor(
    path: string,
    fd: number,
    metadata: Record<string, string>,
    entries: Map<string, TensorEntry>,
    dataStart: number,
  ) {
    this.path = path;
    this.metadata = metadata;
    this.#fd = fd;
    this.#entries = entries;
    this.#dataStart = dataStart;
    orphanedFds.register(this, fd, this);
  }

  /** Opens a file and validates its whole header (no tensor data read). Throws SafetensorsError naming the file (and tensor). */
  static open(path: string): SafetensorsReader {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new SafetensorsError(`[safetensors] ${path}: cannot open: ${describeError(e)}`, { file: path, cause: e });
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) fail(path, 'not a regular file');
      const prefix = new Uint8Array(8);
      if (st.size >= 8) readExact(fd, 0, prefix, path);
      const n = headerLength(prefix, st.size, path);
      const headerBytes = new Uint8Array(n);
      readExact(fd, 8, headerBytes, path);
      const { metadata, entries } = parseHeader(headerBytes, st.size - 8 - n, path);
      return new SafetensorsReader(path, fd, metadata, entries, 8 + n);
    } catch (e) {
      closeSync(fd);
      throw asSafetensorsError(e, path);
    }
  }

  /** Tensor names in header order. */
  names(): string[] {
    return [...this.#entries.keys()];
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** dtype, shape and data offsets of a tensor; throws naming the file and the missing key (with close names). */
  info(name: string): SafetensorsInfo {
    const e = this.#entry(name);
    return { dtype: e.dtype, shape: [...e.shape], dataOffsets: [e.begin, e.end] };
  }

  /** Reads one tensor into engine memory (see LoadOpts for the dtype rules). */
  tensor(name: string, opts?: LoadOpts): Tensor {
    const e = this.#entry(name);
    const dtype = this.#targetDType(name, e, opts?.dtype);
    const fd = this.#open(name);
    let t: Tensor | null = null;
    try {
      const backend = opts?.backend ?? defaultBackend();
      if (!backend.dtypes.includes(dtype))
        fail(this.path, `backend "${backend.name}" cannot hold dtype ${dtype}`, name);
      t = new Tensor(Storage.alloc(backend, dtype, e.numel), e.shape);
      this.#fill(fd, t, e, name);
      return t;
    } catch (err) {
      t?.dispose();
      throw asSafetensorsError(err, this.path, name);
    }
  }

  /** The raw little-endian bytes of a tensor (a fresh copy). */
  bytes(name: string): Uint8Array {
    const e = this.#entry(name);
    const fd = this.#open(name);
    const out = new Uint8Array(e.end - e.begin);
    try {
      readExact(fd, this.#dataStart + e.begin, out, this.path, name);
    } catch (err) {
      throw asSafetensorsError(err, this.path, name);
    }
    return out;
  }

  /** Closes the file descriptor (idempotent); names(), has() and info() keep working. */
  close(): void {
    if (this.#fd === null) return;
    orphanedFds.unregister(this);
    const fd = this.#fd;
    this.#fd = null;
    chunkBuffer = null;
    releaseDecodeScratch();
    closeSync(fd);
  }

  #entry(name: string): TensorEntry {
    const e = this.#entries.get(name);
    if (e) return e;
    throw missingTensor(this.path, name, this.#entries.keys(), this.#entries.size);
  }

  #open(name: string): number {
    if (this.#fd === null) fail(this.path, 'cannot read: the reader was closed', name);
    return this.#fd;
  }

  #targetDType(name: string, e: TensorEntry, wanted: DType | undefined): DType {
    const natural = defaultEngineDType(e.dtype);
    const dtype = natural === null ? null : (wanted ?? natural);
    if (dtype === null)
      fail(
        this.path,
        `dtype ${e.dtype} is recognised but cannot be loaded into the engine (bytes() returns its raw data)`,
        name,
      );
    if (!canLoadAs(e.dtype, dtype)) {
      const why = e.dtype === 'BOOL' || dtype === 'bool' ? '' : ' (floating-point values would be truncated)';
      fail(this.path, `cannot load ${e.dtype} data as ${dtype}${why}`, name);
    }
    return dtype;
  }

  /**
   * Reads the tensor's bytes into its storage: in one read straight into the buffer when the stored
   * bytes are the engine's (F32 → f32, BF16 → bf16, …) and the backend can; else a chunk at a time,
   * converting and uploading each chunk at its element offset.
   */
  #fill(fd: number, t: Tensor, e: TensorEntry, name: string): void {
    const size = dtypeBits(e.dtype)! / 8;
    const buf = t.storage.buffer('safetensors');
    const raw = RAW_AS[e.dtype];
    const backend = t.backend;
    if (backend.readFile && raw !== undefined && backend.dtypes.includes(raw) && e.numel > 0) {
      const read = (into: BackendBuffer) => {
        try {
          backend.readFile!(into, 0, fd, this.#dataStart + e.begin, e.numel * size);
        } catch (err) {
          throw new SafetensorsError(
            `[safetensors] ${this.path}: tensor ${quote(name)}: ${describeError(err).replace(/^\[native readFile\] /, '')}`,
            { file: this.path, tensor: name, cause: err },
          );
        }
      };
      if (raw === t.dtype) return read(buf);
      // Another float dtype (BF16 → f32, the common case): read the raw bytes, then the backend's copy converts.
      if (isFloat(raw) && isFloat(t.dtype)) {
        const staged = backend.alloc(raw, e.numel);
        try {
          read(staged);
          const dense = (b: BackendBuffer, dtype: DType): View => ({
            buf: b,
            dtype,
            offset: 0,
            shape: [e.numel],
            strides: [1],
          });
          backend.copy(dense(buf, t.dtype), dense(staged, raw));
        } finally {
          backend.free(staged);
        }
        return;
      }
    }
    const per = Math.min(CHUNK_ELEMENTS, e.numel);
    for (let first = 0; first < e.numel; first += per) {
      const n = Math.min(per, e.numel - first);
      const bytes = chunk(n * size);
      readExact(fd, this.#dataStart + e.begin + first * size, bytes, this.path, name);
      t.backend.upload(buf, t.dtype, first, decodeChunk(e.dtype, t.dtype, bytes, n, first));
    }
  }
}

/** The error for a name that is not there, with the closest names as suggestions. */
export function missingTensor(file: string, name: string, names: Iterable<string>, count: number): SafetensorsError {
  const held = `${count} tensor${count === 1 ? '' : 's'}`;
  return new SafetensorsError(
    `[safetensors] ${file}: no tensor named ${quote(name)}${didYouMean(name, names)} (it holds ${held})`,
    {
      file,
      tensor: name,
    },
  );
}

/** Fills `dest` from the file at `position`; a short file (changed since open) is a SafetensorsError. */
function readExact(fd: number, position: number, dest: Uint8Array, file: string, tensor?: string): void {
  let done = 0;
  while (done < dest.length) {
    let got: number;
    try {
      got = readSync(fd, dest, done, Math.min(dest.length - done, MAX_READ), position + done);
    } catch (e) {
      throw new SafetensorsError(
        `[safetensors] ${file}: ${tensor === undefined ? '' : `tensor ${quote(tensor)}: `}read failed at byte ${position + done}: ${describeError(e)}`,
        { file, tensor, cause: e },
      );
    }
    if (got === 0)
      fail(
        file,
        `file ends at byte ${position + done}, before the ${dest.length} bytes expected at ${position} (was it changed after opening?)`,
        tensor,
      );
    done += got;
  }
}

/** Any failure as a SafetensorsError naming the file and tensor (engine errors keep their message as the reason). */
function asSafetensorsError(e: unknown, file: string, tensor?: string): SafetensorsError {
  if (e instanceof SafetensorsError) return e;
  const where = tensor === undefined ? '' : `tensor ${quote(tensor)}: `;
  const what = e instanceof ValueRangeError ? 'value out of range: ' : '';
  return new SafetensorsError(`[safetensors] ${file}: ${where}${what}${describeError(e)}`, { file, tensor, cause: e });
}

// ---- writer -----------------------------------------------------------------------------------

interface Planned {
  name: string;
  key: Buffer;
  tensor: Tensor;
  dtype: SafetensorsDType;
  begin: number;
  end: number;
}

/**
 * Writes tensors atomically (temporary file in the same directory + fsync + rename + directory fsync)
 * in safetensors' own layout: header JSON without spaces, `__metadata__` first, tensors sorted by
 * descending dtype (safetensors' enum order) then by name, padded with spaces to a multiple of 8, data
 * contiguous. Accepts engine tensors of any dtype and layout; disposes nothing.
 */
export function writeSafetensors(
  path: string,
  tensors: Record<string, Tensor> | Map<string, Tensor>,
  metadata?: Record<string, string>,
): void {
  const plan = planLayout(path, tensors instanceof Map ? [...tensors] : Object.entries(tensors));
  const header = Buffer.from(headerJson(path, plan, metadata), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(header.length));
  try {
    writeAtomically(path, (fd) => {
      writeAll(fd, prefix);
      writeAll(fd, header);
      for (const p of plan) writeTensor(fd, path, p);
    });
  } catch (e) {
    if (e instanceof IoError && !(e instanceof SafetensorsError))
      throw new SafetensorsError(e.message.replace(/^\[io\]/, '[safetensors]'), { file: path, cause: e });
    throw asSafetensorsError(e, path);
  }
}

function planLayout(file: string, items: readonly [string, Tensor][]): Planned[] {
  const plan = items.map(([name, tensor]): Planned => {
    if (typeof name !== 'string' || !wellFormed(name))
      fail(file, `tensor names must be well-formed strings, got ${quote(String(name))}`);
    if (name === '__metadata__')
      fail(file, 'a tensor cannot be named "__metadata__" (the key is reserved for metadata)', name);
    if (!(tensor instanceof Tensor))
      fail(file, `expected a Tensor, got ${tensor === null ? 'null' : typeof tensor}`, name);
    if (tensor.disposed) fail(file, `cannot write a disposed tensor ${tensor.toString()}`, name);
    return { name, key: Buffer.from(name, 'utf8'), tensor, dtype: fileDType(tensor.dtype), begin: 0, end: 0 };
  });
  // Rust compares names as UTF-8 bytes, which differs from JS's UTF-16 order beyond the BMP.
  plan.sort((a, b) => dtypeOrder(b.dtype) - dtypeOrder(a.dtype) || Buffer.compare(a.key, b.key));
  let at = 0;
  for (const p of plan) {
    p.begin = at;
    at += p.tensor.numel * DTYPE_BYTES[p.tensor.dtype];
    p.end = at;
  }
  return plan;
}

/** The header as serde_json prints it (compact; JSON.stringify escapes strings the same way), space-padded to 8. */
function headerJson(file: string, plan: readonly Planned[], metadata: Record<string, string> | undefined): string {
  const parts: string[] = [];
  if (metadata !== undefined) {
    if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata))
      fail(file, '__metadata__ must be an object of strings');
    const kv = Object.entries(metadata).map(([k, v]) => {
      if (typeof v !== 'string' || !wellFormed(v) || !wellFormed(k))
        fail(
          file,
          `__metadata__ must map strings to strings, but ${quote(k)} is ${typeof v === 'string' ? 'not well-formed' : typeof v}`,
        );
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    parts.push(`"__metadata__":{${kv.join(',')}}`);
  }
  for (const p of plan) {
    const info = `{"dtype":"${p.dtype}","shape":[${p.tensor.shape.join(',')}],"data_offsets":[${p.begin},${p.end}]}`;
    parts.push(`${JSON.stringify(p.name)}:${info}`);
  }
  const json = `{${parts.join(',')}}`;
  const pad = (8 - (Buffer.byteLength(json, 'utf8') % 8)) % 8;
  return json + ' '.repeat(pad);
}

/**
 * Downloads a tensor and writes its bytes. A contiguous tensor goes a chunk at a time through 1-D
 * views of its storage, so saving a model never holds a second copy of its largest tensor.
 */
function writeTensor(fd: number, file: string, p: Planned): void {
  const t = p.tensor;
  const parts: { first: number; n: number }[] = [];
  if (t.isContiguous && t.numel > CHUNK_ELEMENTS)
    for (let first = 0; first < t.numel; first += CHUNK_ELEMENTS)
      parts.push({ first, n: Math.min(CHUNK_ELEMENTS, t.numel - first) });
  let written = 0;
  for (const part of parts.length > 0 ? parts : [null]) {
    let host: HostArray;
    const view = part === null ? t : new Tensor(t.storage, [part.n], [1], t.offset + part.first);
    try {
      host = view.toArray();
    } catch (e) {
      throw asSafetensorsError(e, file, p.name);
    } finally {
      if (view !== t) view.dispose();
    }
    writeAll(fd, new Uint8Array(host.buffer, host.byteOffset, host.byteLength));
    written += host.byteLength;
  }
  if (written !== p.end - p.begin)
    fail(file, `downloaded ${written} bytes but ${p.dtype} ${t.toString()} needs ${p.end - p.begin}`, p.name);
}

/** A string without lone surrogates (only those can be encoded as UTF-8, which the header is). */
function wellFormed(s: string): boolean {
  return !/\p{Surrogate}/u.test(s);
}
