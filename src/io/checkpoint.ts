// A Hugging Face model directory as one set of named tensors: model.safetensors, or a sharded
// checkpoint (model.safetensors.index.json + model-0000x-of-0000y.safetensors, or any other
// *.safetensors.index.json), or a directory holding a single .safetensors file (a PEFT adapter).
// Every shard's header is validated on open; tensor data is read on demand.

import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize } from 'node:path';
import type { Tensor } from '../tensor/tensor.js';
import { IoError, describeError } from './errors.js';
import { readJsonFile } from './json.js';
import { type LoadOpts, SafetensorsReader, type SafetensorsInfo, missingTensor } from './safetensors.js';

const INDEX = 'model.safetensors.index.json';
const SINGLE = 'model.safetensors';
const SHARD = /^(.*)-(\d+)-of-(\d+)\.safetensors$/;

export class Checkpoint {
  readonly dir: string;
  /** The index file, or null for an unsharded checkpoint. */
  readonly indexFile: string | null;
  readonly #readers: SafetensorsReader[];
  /** Which shard holds each tensor, in index order (then shard order for tensors the index omits). */
  readonly #where: Map<string, SafetensorsReader>;

  private constructor(
    dir: string,
    indexFile: string | null,
    readers: SafetensorsReader[],
    where: Map<string, SafetensorsReader>,
  ) {
    this.dir = dir;
    this.indexFile = indexFile;
    this.#readers = readers;
    this.#where = where;
  }

  /**
   * Opens a checkpoint directory (or a single .safetensors / .safetensors.index.json file). Throws
   * IoError naming the directory and what was expected when no safetensors checkpoint is found, and
   * SafetensorsError for a malformed shard.
   */
  static open(dir: string): Checkpoint {
    let isDir: boolean;
    try {
      isDir = statSync(dir).isDirectory();
    } catch (e) {
      throw new IoError(`[checkpoint] ${dir}: cannot open: ${describeError(e)}`, { file: dir, cause: e });
    }
    if (isDir) return Checkpoint.#fromDirectory(dir);
    if (dir.endsWith('.index.json')) return Checkpoint.#fromIndex(dirname(dir), dir, dir);
    if (dir.endsWith('.safetensors')) return Checkpoint.#fromFiles(dir, [dir]);
    return fail(dir, 'expected a model directory, a .safetensors file or a .safetensors.index.json file');
  }

  /** model.safetensors.index.json, another single index, model.safetensors, a lone or complete set of .safetensors files. */
  static #fromDirectory(dir: string): Checkpoint {
    let files: string[];
    try {
      files = readdirSync(dir).sort();
    } catch (e) {
      throw new IoError(`[checkpoint] ${dir}: cannot list the directory: ${describeError(e)}`, { file: dir, cause: e });
    }
    const indexes = files.filter((f) => f.endsWith('.safetensors.index.json'));
    const index = files.includes(INDEX) ? INDEX : indexes.length === 1 ? indexes[0]! : null;
    if (index !== null) return Checkpoint.#fromIndex(dir, join(dir, index), dir);
    if (indexes.length > 1)
      fail(dir, `several index files (${indexes.join(', ')}) and no ${INDEX}; open one of them directly`);
    const st = files.includes(SINGLE) ? [SINGLE] : files.filter((f) => f.endsWith('.safetensors'));
    if (st.length === 1 || (st.length > 1 && completeShardSet(st)))
      return Checkpoint.#fromFiles(
        dir,
        st.map((f) => join(dir, f)),
      );
    if (st.length > 1)
      fail(dir, `several .safetensors files (${st.join(', ')}) and no index file saying which tensors each holds`);
    return fail(dir, nothingFound(files));
  }

  names(): string[] {
    return [...this.#where.keys()];
  }

  has(name: string): boolean {
    return this.#where.has(name);
  }

  info(name: string): SafetensorsInfo {
    return this.#reader(name).info(name);
  }

  tensor(name: string, opts?: LoadOpts): Tensor {
    return this.#reader(name).tensor(name, opts);
  }

  /** The shard files, in the order they were opened. */
  files(): string[] {
    return this.#readers.map((r) => r.path);
  }

  /** Closes every shard (idempotent). */
  close(): void {
    for (const r of this.#readers) r.close();
  }

  #reader(name: string): SafetensorsReader {
    const r = this.#where.get(name);
    if (!r) throw missingTensor(this.dir, name, this.#where.keys(), this.#where.size);
    return r;
  }

  static #fromFiles(dir: string, paths: readonly string[]): Checkpoint {
    const readers = openAll(paths);
    const where = new Map<string, SafetensorsReader>();
    for (const r of readers) for (const n of r.names()) if (!where.has(n)) where.set(n, r);
    return new Checkpoint(dir, null, readers, where);
  }

  static #fromIndex(base: string, indexFile: string, dir: string): Checkpoint {
    const weightMap = readWeightMap(indexFile);
    const shardNames = [...new Set(weightMap.values())];
    const readers = openAll(shardNames.map((f) => join(base, f)));
    const byFile = new Map(shardNames.map((f, i) => [f, readers[i]!]));
    const where = new Map<string, SafetensorsReader>();
    for (const [name, file] of weightMap) {
      const r = byFile.get(file)!;
      if (!r.has(name)) {
        for (const x of readers) x.close();
        throw new IoError(
          `[checkpoint] ${indexFile}: weight_map puts tensor ${JSON.stringify(name)} in ${file}, which does not hold it`,
          {
            file: indexFile,
            key: name,
          },
        );
      }
      where.set(name, r);
    }
    for (const r of readers) for (const n of r.names()) if (!where.has(n)) where.set(n, r);
    return new Checkpoint(dir, indexFile, readers, where);
  }
}

function fail(dir: string, msg: string): never {
  throw new IoError(`[checkpoint] ${dir}: ${msg}`, { file: dir });
}

/** The index's weight_map (tensor → shard file), checked: shard paths must stay inside the directory. */
function readWeightMap(indexFile: string): Map<string, string> {
  const index = readJsonFile(indexFile);
  const bad = (msg: string, key?: string): never => {
    throw new IoError(`[checkpoint] ${indexFile}: ${msg}`, { file: indexFile, key });
  };
  if (typeof index !== 'object' || index === null || Array.isArray(index))
    return bad('expected a JSON object with "weight_map"');
  const wm = (index as Record<string, unknown>)['weight_map'];
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm))
    return bad('"weight_map" must be an object of tensor name → file name');
  const out = new Map<string, string>();
  for (const [name, file] of Object.entries(wm)) {
    if (typeof file !== 'string' || file === '')
      bad(`weight_map[${JSON.stringify(name)}] must be a file name, got ${JSON.stringify(file)}`, name);
    const f = file as string;
    if (isAbsolute(f) || normalize(f).split(/[\\/]/).includes('..'))
      bad(`weight_map[${JSON.stringify(name)}] = ${JSON.stringify(f)} points outside the checkpoint directory`, name);
    out.set(name, f);
  }
  return out;
}

/** Opens every file, closing the ones already open when one fails. */
function openAll(paths: readonly string[]): SafetensorsReader[] {
  const readers: SafetensorsReader[] = [];
  try {
    for (const p of paths) readers.push(SafetensorsReader.open(p));
  } catch (e) {
    for (const r of readers) r.close();
    throw e;
  }
  return readers;
}

/** Files named <prefix>-0000i-of-0000n.safetensors for every i in 1..n, with one prefix and n. */
function completeShardSet(files: readonly string[]): boolean {
  const m = files.map((f) => SHARD.exec(f));
  if (m.some((x) => x === null)) return false;
  const [prefix, total] = [m[0]![1], m[0]![3]];
  if (m.some((x) => x![1] !== prefix || x![3] !== total) || Number(total) !== files.length) return false;
  return m.every((x, i) => Number(x![2]) === i + 1);
}

function nothingFound(files: readonly string[]): string {
  const bins = files.filter((f) => f.endsWith('.bin') || f.endsWith('.pt') || f.endsWith('.pth'));
  const seen =
    files.length === 0
      ? 'the directory is empty'
      : `found ${files.slice(0, 8).join(', ')}${files.length > 8 ? ', …' : ''}`;
  const bin =
    bins.length > 0
      ? `; ${bins.map((f) => basename(f)).join(', ')} (PyTorch pickle) is not supported: convert it to safetensors, e.g. model.save_pretrained(dir, safe_serialization=True) in Python`
      : '; PyTorch .bin checkpoints (pytorch_model.bin) are not supported, only safetensors';
  return `no ${SINGLE} or ${INDEX} (nor any other .safetensors file) — ${seen}${bin}`;
}
