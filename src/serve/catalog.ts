// What the server needs of wherever adapters live: list them, find an adapter's current version (per
// request: a re-upload or a changed folder gives a new version, which the engine loads fresh), and read
// the files of a version for the engine. It is a structural subset of the adapter store's AdapterStore
// (store/types.ts), so any store plugs in as it is; folderCatalog is today's folder of adapters.

import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CatalogEntry {
  name: string;
  version: number;
  /** The owning tenant, or null (every tenant may use it). */
  owner: string | null;
  bytes: number;
  /** When this version was stored, ms since the epoch. */
  createdAt: number;
}

export interface AdapterFilesBytes {
  'adapter_config.json': Uint8Array;
  'adapter_model.safetensors': Uint8Array;
}

export interface AdapterCatalog {
  /** Where the adapters are (a folder, a store spec without passwords), for messages. */
  readonly spec: string;
  /** The adapters, by name; with `tenant`, only those it may use. */
  list(tenant?: string): Promise<CatalogEntry[]>;
  /** The current version of `name`, null when there is no such adapter. */
  version(name: string): Promise<number | null>;
  /** The files of one version (null when gone). */
  get(name: string, opts?: { version?: number }): Promise<{ version: number; files: AdapterFilesBytes } | null>;
}

/** The adapters under `dir`: subfolder name → path, for each subfolder with an adapter_config.json. */
export function findAdapters(dir: string): Map<string, string> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`${dir} is not a folder of adapters`);
  const out = new Map<string, string>();
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (existsSync(join(path, 'adapter_config.json'))) out.set(name, path);
  }
  return out;
}

const FILES = ['adapter_config.json', 'adapter_model.safetensors'] as const;

/** When an adapter's files last changed: their modification times and sizes (missing files count as 0). */
function stampOf(dir: string): string {
  return FILES.map((f) => {
    try {
      const s = statSync(join(dir, f));
      return `${s.mtimeMs}:${s.size}`;
    } catch {
      return '0';
    }
  }).join(' ');
}

/**
 * A folder of adapters (each subfolder with adapter_config.json, named by the folder), read as it is now
 * on every call: an adapter copied in while serving is found, and one whose files changed (a later
 * modification time or another size) gets the next version number. Names come from readdir, never from
 * a request joined to a path, so a name cannot escape the folder.
 */
export class FolderCatalog implements AdapterCatalog {
  readonly spec: string;
  readonly #versions = new Map<string, { stamp: string; version: number }>();
  /** The folder's entries, re-read when its modification time changes (an entry added or removed). */
  #entries = new Set<string>();
  #dirStamp = -1;

  constructor(readonly dir: string) {
    this.spec = dir;
    findAdapters(dir); // a missing folder is an error now, not at the first request
  }

  /**
   * The folder of `name`, or undefined. A look-up is a stat of the folder and of the adapter's config,
   * not a scan of every entry (1,000 adapters would cost a stat each, per request).
   */
  pathOf(name: string): string | undefined {
    let stamp: number;
    try {
      stamp = statSync(this.dir).mtimeMs;
    } catch {
      return undefined;
    }
    if (stamp !== this.#dirStamp) {
      this.#entries = new Set(readdirSync(this.dir));
      this.#dirStamp = stamp;
    }
    // Only names the folder lists: a request's name is never joined to a path unchecked.
    if (!this.#entries.has(name)) return undefined;
    const path = join(this.dir, name);
    return existsSync(join(path, 'adapter_config.json')) ? path : undefined;
  }

  #versionOf(name: string, path: string): number {
    const stamp = stampOf(path);
    const known = this.#versions.get(name);
    if (known && known.stamp === stamp) return known.version;
    const version = (known?.version ?? 0) + 1;
    this.#versions.set(name, { stamp, version });
    return version;
  }

  list(): Promise<CatalogEntry[]> {
    const out: CatalogEntry[] = [];
    for (const [name, path] of findAdapters(this.dir)) {
      let bytes = 0;
      let createdAt = 0;
      for (const f of FILES) {
        try {
          const s = statSync(join(path, f));
          bytes += s.size;
          createdAt = Math.max(createdAt, s.mtimeMs);
        } catch {
          // listed anyway; loading it reports the missing file
        }
      }
      out.push({ name, version: this.#versionOf(name, path), owner: null, bytes, createdAt: Math.round(createdAt) });
    }
    return Promise.resolve(out);
  }

  version(name: string): Promise<number | null> {
    const path = this.pathOf(name);
    return Promise.resolve(path === undefined ? null : this.#versionOf(name, path));
  }

  get(name: string): Promise<{ version: number; files: AdapterFilesBytes } | null> {
    // A folder keeps only its current files: whatever version was asked for, these are what loads.
    const path = this.pathOf(name);
    if (path === undefined) return Promise.resolve(null);
    const version = this.#versionOf(name, path);
    const read = (f: string) => {
      try {
        return new Uint8Array(readFileSync(join(path, f)));
      } catch {
        return new Uint8Array(0); // the loader names the file when it cannot read it
      }
    };
    return Promise.resolve({
      version,
      files: { 'adapter_config.json': read(FILES[0]), 'adapter_model.safetensors': read(FILES[1]) },
    });
  }
}

/**
 * Adapter files in a fresh private temporary folder, for loaders that read folders (PeftModel); the
 * caller removes it. Empty files are left out, so the loader names a missing file as missing.
 */
export function filesToDir(files: AdapterFilesBytes): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'vera-adapter-'));
  for (const [f, bytes] of Object.entries(files) as [string, Uint8Array][])
    if (bytes.byteLength > 0) writeFileSync(join(dir, f), bytes);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
