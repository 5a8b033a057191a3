// The folder store: today's `--adapters DIR` layout (a subfolder per adapter, named by the folder), so a
// folder the store writes is still a plain adapter folder for every other tool, and one filled by hand
// is a store. Layout:
//
//   DIR/NAME                      the current version: a symlink to .vera/versions/NAME/V (written by the
//                                 store), or a plain folder (copied in by hand: no owner, version 1 when
//                                 first seen and one more each time its files change, by modification time
//                                 and size, as this process sees them)
//   DIR/.vera/versions/NAME/V/    a version: the two files and meta.json ({version, owner, createdAt});
//                                 never changed once in place, so a reader of V reads one version's files
//   DIR/.vera/store.json          the highest version given to each name, so no version is reused, also
//                                 after a remove (written before the version it gives out: a crash leaves
//                                 a gap, never a reuse)
//   DIR/.vera/keys.json           the API keys (hashes only)
//   DIR/.vera/tmp/                temporary folders and links (emptied when a store opens)
//   DIR/.vera/lock                held during a change, by several processes too (see FileLock)
//
// A put writes the new version's folder in tmp/, renames it into versions/, then renames a new symlink
// over DIR/NAME: rename(2) replaces the old link in one step, so DIR/NAME always names a whole version.
// Every change runs synchronously under the lock, so handles in one process never interleave either.

import { randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../../io/atomic.js';
import { FileLock, fsyncDir, writeFileDurable } from './fs-util.js';
import {
  ADAPTER_FILES,
  type AdapterFiles,
  type AdapterInfo,
  type AdapterStore,
  type KeyRecord,
  type KeyTable,
  type PutOptions,
  type StoredAdapter,
  StoreError,
  filesBytes,
  isValidName,
} from './types.js';
import type { OpenOptions } from './options.js';
import { ownerConflict, prepareFiles } from './options.js';

interface Meta {
  version: number;
  owner: string | null;
  createdAt: number;
}

const LINK = /^\.vera\/versions\/([^/]+)\/([1-9][0-9]*)$/;

/** The adapters under `dir`: subfolder name → path, for each subfolder with an adapter_config.json. */
export function findAdapters(dir: string): Map<string, string> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`${dir} is not a folder of adapters`);
  const out = new Map<string, string>();
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (isValidName(name) && existsSync(join(path, ADAPTER_FILES[0]))) out.set(name, path);
  }
  return out;
}

export class FolderStore implements AdapterStore {
  readonly kind = 'folder' as const;
  readonly spec: string;
  readonly keys: KeyTable;
  readonly #root: string;
  readonly #meta: string;
  readonly #lock: FileLock;
  readonly #opts: OpenOptions;
  /** Folders placed by hand: the version this process gave them, and the stamp of their files then. */
  readonly #hand = new Map<string, { stamp: string; version: number }>();

  constructor(dir: string, opts: OpenOptions = {}) {
    this.spec = dir;
    this.#root = resolve(dir);
    this.#opts = opts;
    if (!existsSync(this.#root)) mkdirSync(this.#root, { recursive: true });
    else if (!statSync(this.#root).isDirectory())
      throw new StoreError('spec', `store ${dir}: not a folder (a folder store is a folder of adapter subfolders)`);
    this.#meta = join(this.#root, '.vera');
    mkdirSync(join(this.#meta, 'versions'), { recursive: true });
    this.#lock = new FileLock(join(this.#meta, 'lock'));
    // Left by a put that died half-way: never part of any version.
    this.#lock.hold(() => {
      rmSync(join(this.#meta, 'tmp'), { recursive: true, force: true });
      mkdirSync(join(this.#meta, 'tmp'));
    });
    this.keys = new FolderKeys(join(this.#meta, 'keys.json'), this.#lock);
  }

  async list(tenant?: string): Promise<AdapterInfo[]> {
    const out: AdapterInfo[] = [];
    for (const name of readdirSync(this.#root).sort()) {
      if (!isValidName(name)) continue; // .vera, hidden and odd names are never adapters
      const info = this.#current(name);
      if (info && (tenant === undefined || info.owner === null || info.owner === tenant)) out.push(info);
    }
    return out;
  }

  async get(name: string, opts: { version?: number } = {}): Promise<StoredAdapter | null> {
    if (!isValidName(name)) return null;
    // A put two versions on may prune the folder between reading the link and the files: read again.
    for (let attempt = 0; attempt < 3; attempt++) {
      // The version asked for may be the current one (a folder placed by hand has no versions/ entry).
      const cur = this.#current(name);
      const current = opts.version === undefined || cur?.version === opts.version;
      const info = current ? cur : this.#version(name, opts.version!);
      if (!info) return null;
      const dir = current ? join(this.#root, name) : this.#versionDir(name, opts.version!);
      try {
        const files = {} as AdapterFiles;
        for (const f of ADAPTER_FILES) files[f] = readFileSync(join(dir, f));
        // The link may have moved on between the two reads; the files are those of the version now named.
        const again = current ? this.#current(name) : info;
        if (again && again.version === info.version) return { ...info, files };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
    throw new StoreError('unavailable', `adapter "${name}" changed while it was read three times; try again`);
  }

  async version(name: string): Promise<number | null> {
    return isValidName(name) ? (this.#current(name)?.version ?? null) : null;
  }

  async info(name: string): Promise<AdapterInfo | null> {
    return isValidName(name) ? this.#current(name) : null;
  }

  async versions(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const info of await this.list()) out.set(info.name, info.version);
    return out;
  }

  async put(name: string, files: AdapterFiles, owner: string | null, opts: PutOptions = {}): Promise<AdapterInfo> {
    const ready = await prepareFiles(name, files, owner, this.#opts);
    return this.#lock.hold(() => this.#putLocked(name, ready, owner, opts));
  }

  #putLocked(name: string, files: AdapterFiles, owner: string | null, opts: PutOptions): AdapterInfo {
    const current = this.#current(name);
    if (current && current.owner !== owner && !opts.replaceOwner) throw ownerConflict(name, current.owner);
    const seq = this.#readSeq();
    const version = Math.max(seq[name] ?? 0, current?.version ?? 0) + 1;
    seq[name] = version;
    writeFileAtomic(join(this.#meta, 'store.json'), `${JSON.stringify({ format: 1, lastVersion: seq }, null, 1)}\n`);

    const meta: Meta = { version, owner, createdAt: Date.now() };
    const tmp = join(this.#meta, 'tmp', `put-${randomBytes(6).toString('hex')}`);
    mkdirSync(tmp);
    for (const f of ADAPTER_FILES) writeFileDurable(join(tmp, f), files[f]);
    writeFileDurable(join(tmp, 'meta.json'), JSON.stringify(meta));
    fsyncDir(tmp);
    mkdirSync(join(this.#meta, 'versions', name), { recursive: true });
    renameSync(tmp, this.#versionDir(name, version));
    fsyncDir(join(this.#meta, 'versions', name));
    this.#opts.onPutStep?.('written');

    const path = join(this.#root, name);
    if (current && !lstatSync(path).isSymbolicLink()) {
      // A folder placed by hand becomes the kept previous version (it is briefly absent here, once).
      const old: Meta = { version: current.version, owner: current.owner, createdAt: current.createdAt };
      writeFileDurable(join(path, 'meta.json'), JSON.stringify(old));
      rmSync(this.#versionDir(name, current.version), { recursive: true, force: true });
      renameSync(path, this.#versionDir(name, current.version));
    }
    const link = join(this.#meta, 'tmp', `link-${randomBytes(6).toString('hex')}`);
    symlinkSync(`.vera/versions/${name}/${version}`, link);
    renameSync(link, path);
    fsyncDir(this.#root);

    // Keep the new version and the one it replaced; older ones go.
    for (const v of readdirSync(join(this.#meta, 'versions', name)))
      if (v !== String(version) && v !== String(current?.version))
        rmSync(join(this.#meta, 'versions', name, v), { recursive: true, force: true });
    return { name, version, owner, bytes: filesBytes(files), createdAt: meta.createdAt };
  }

  async remove(name: string, opts: { owner?: string | null } = {}): Promise<boolean> {
    if (!isValidName(name)) return false;
    return this.#lock.hold(() => {
      const current = this.#current(name);
      if (!current || (opts.owner !== undefined && current.owner !== opts.owner)) return false;
      const path = join(this.#root, name);
      if (lstatSync(path).isSymbolicLink()) rmSync(path);
      else {
        // Out of sight in one step, then deleted.
        const gone = join(this.#meta, 'tmp', `rm-${randomBytes(6).toString('hex')}`);
        renameSync(path, gone);
        rmSync(gone, { recursive: true, force: true });
      }
      fsyncDir(this.#root);
      rmSync(join(this.#meta, 'versions', name), { recursive: true, force: true });
      return true;
    });
  }

  async close(): Promise<void> {}

  #versionDir(name: string, version: number): string {
    return join(this.#meta, 'versions', name, String(version));
  }

  /** The current version's info, null when `name` is no adapter. */
  #current(name: string): AdapterInfo | null {
    const path = join(this.#root, name);
    let st;
    try {
      st = lstatSync(path);
    } catch {
      return null;
    }
    if (st.isSymbolicLink()) {
      let target: string;
      try {
        target = readlinkSync(path);
      } catch {
        return null;
      }
      const m = LINK.exec(target);
      // A link the store did not write is not followed out of the folder: only its own versions count.
      if (!m || m[1] !== name) return null;
      return this.#version(name, Number(m[2]));
    }
    if (!st.isDirectory()) return null;
    const files = ADAPTER_FILES.map((f) => {
      try {
        return statSync(join(path, f));
      } catch {
        return null; // a hand-made folder without weights: listed, and loading it names the missing file
      }
    });
    if (!files[0]) return null;
    const stamp = files.map((f) => (f ? `${f.mtimeMs}:${f.size}` : '0')).join(' ');
    let known = this.#hand.get(name);
    if (!known || known.stamp !== stamp) {
      // Above any version a put gave out for this name, so a version is never reused for other files.
      known = { stamp, version: Math.max(known?.version ?? 0, this.#readSeq()[name] ?? 0) + 1 };
      this.#hand.set(name, known);
    }
    const bytes = files.reduce((n, f) => n + (f?.size ?? 0), 0);
    return { name, version: known.version, owner: null, bytes, createdAt: Math.round(st.mtimeMs) };
  }

  #version(name: string, version: number): AdapterInfo | null {
    const dir = this.#versionDir(name, version);
    let meta: Meta;
    try {
      meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Meta;
    } catch {
      return null;
    }
    return { name, version, owner: meta.owner, bytes: sizeOf(dir), createdAt: meta.createdAt };
  }

  #readSeq(): Record<string, number> {
    const file = join(this.#meta, 'store.json');
    if (!existsSync(file)) return {};
    try {
      return (JSON.parse(readFileSync(file, 'utf8')) as { lastVersion: Record<string, number> }).lastVersion;
    } catch (e) {
      throw new StoreError('unavailable', `${file}: unreadable (${(e as Error).message})`, { cause: e });
    }
  }
}

function sizeOf(dir: string): number {
  let n = 0;
  for (const f of ADAPTER_FILES) {
    try {
      n += statSync(join(dir, f)).size;
    } catch {
      // a hand-made folder without weights: counted as it is
    }
  }
  return n;
}

/** keys.json: every change reads, changes and rewrites the file atomically under the store's lock. */
class FolderKeys implements KeyTable {
  constructor(
    readonly file: string,
    readonly lock: FileLock,
  ) {}

  #read(): KeyRecord[] {
    if (!existsSync(this.file)) return [];
    return (JSON.parse(readFileSync(this.file, 'utf8')) as { keys: KeyRecord[] }).keys;
  }

  #write(keys: KeyRecord[]): void {
    writeFileAtomic(this.file, `${JSON.stringify({ keys }, null, 1)}\n`);
  }

  async insert(record: KeyRecord): Promise<void> {
    this.lock.hold(() => {
      const keys = this.#read();
      if (keys.some((k) => k.id === record.id || k.hash === record.hash))
        throw new StoreError('conflict', `key ${record.id} exists`);
      this.#write([...keys, record]);
    });
  }

  async byHash(hash: string): Promise<KeyRecord | null> {
    return this.#read().find((k) => k.hash === hash) ?? null;
  }

  async list(): Promise<KeyRecord[]> {
    return this.#read().sort((a, b) => a.createdAt - b.createdAt);
  }

  async revoke(id: string, at: number): Promise<boolean> {
    return this.lock.hold(() => {
      const keys = this.#read();
      const k = keys.find((r) => r.id === id);
      if (!k) return false;
      if (k.revokedAt === null) {
        k.revokedAt = at;
        this.#write(keys);
      }
      return true;
    });
  }
}
