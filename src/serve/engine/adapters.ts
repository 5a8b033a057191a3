// The adapters an engine holds on its base model, as name@version: loaded from the AdapterSource on first
// use (one load per version however many requests ask at once), held while requests run on them, and
// unloaded beyond maxLoaded, least recently used first, once idle. A newer version of a name makes the
// older ones stale: they are unloaded as soon as no request runs on them, so a re-upload is served fresh
// while rows already running finish on the version they started with. Every adapter lives in one
// PeftModel (withAdapterNames runs each row of a batch on its own), so the first adapter's method (VeRA
// or LoRA) is the engine's: an adapter of the other method is refused (422) by PeftModel's own check.
// (Moved from AdapterServer's #ensureLoaded, with the folder replaced by the source.)

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BASE_ADAPTER } from '../../adapters/mixed.js';
import { PeftModel } from '../../adapters/peft-model.js';
import type { PreTrainedModel } from '../../models/pretrained.js';
import { type AdapterRef, type AdapterSource, EngineError } from './types.js';

const FILES = ['adapter_config.json', 'adapter_model.safetensors'] as const;

interface Entry {
  ref: AdapterRef;
  users: number;
  stale: boolean;
}

export const refKey = (ref: AdapterRef): string =>
  ref.name === BASE_ADAPTER ? BASE_ADAPTER : `${ref.name}@${ref.version}`;

export class AdapterPool {
  readonly #model: PreTrainedModel;
  readonly #source: AdapterSource;
  readonly #maxLoaded: number;
  readonly #log: ((line: string) => void) | undefined;
  #peft: PeftModel<PreTrainedModel> | null = null;
  /** Loaded adapters by key, least recently used first (Map order). */
  readonly #entries = new Map<string, Entry>();
  readonly #loading = new Map<string, Promise<void>>();

  constructor(
    model: PreTrainedModel,
    source: AdapterSource,
    opts: { maxLoaded: number; log?: (line: string) => void },
  ) {
    this.#model = model;
    this.#source = source;
    this.#maxLoaded = opts.maxLoaded;
    this.#log = opts.log;
  }

  /** Loaded adapters as name@version, least recently used first. */
  loaded(): string[] {
    return [...this.#entries.keys()];
  }

  /** Loads `ref` if needed and holds it for one request; returns the name rows run with. Pair with release(). */
  async acquire(ref: AdapterRef): Promise<string> {
    const key = refKey(ref);
    if (key === BASE_ADAPTER) return key;
    for (;;) {
      const e = this.#entries.get(key);
      // A stale version still loaded serves a request that asked for it (it raced a re-upload).
      if (e) {
        e.users++;
        this.#entries.delete(key); // most recently used last
        this.#entries.set(key, e);
        return key;
      }
      let p = this.#loading.get(key);
      if (!p) {
        p = this.#load(ref, key).finally(() => this.#loading.delete(key));
        this.#loading.set(key, p);
      }
      await p;
    }
  }

  release(key: string): void {
    const e = this.#entries.get(key);
    if (!e) return;
    e.users--;
    if (e.stale && e.users === 0) this.#unload(key);
    this.#trim();
  }

  /** Marks the versions of `name` below keepVersion (all without it) stale: unloaded once idle. */
  evict(name: string, keepVersion?: number): void {
    for (const [key, e] of [...this.#entries]) {
      if (e.ref.name !== name || (keepVersion !== undefined && e.ref.version >= keepVersion)) continue;
      e.stale = true;
      if (e.users === 0) this.#unload(key);
    }
  }

  /** Runs fn with batch row i on adapter names[i] (keys from acquire; BASE_ADAPTER for the base). */
  around<T>(names: readonly string[], fn: () => T): T {
    return this.#peft === null ? fn() : this.#peft.withAdapterNames(names, fn);
  }

  async #load(ref: AdapterRef, key: string): Promise<void> {
    const files = await this.#source(ref);
    // The loader reads folders: the files go to a temporary one, whose path its messages then name.
    const dir = mkdtempSync(join(tmpdir(), 'vera-engine-'));
    const clean = (msg: string) => msg.replaceAll(join(dir, ''), '').replaceAll(dir, `adapter "${ref.name}"`);
    try {
      for (const f of FILES) {
        if (!(files?.[f] instanceof Uint8Array))
          throw new EngineError(422, `adapter "${ref.name}": the source gave no ${f}`);
        writeFileSync(join(dir, f), files[f]);
      }
      try {
        if (this.#peft === null) this.#peft = PeftModel.fromPretrained(this.#model, dir, { adapterName: key });
        else this.#peft.loadAdapter(dir, key);
      } catch (e) {
        throw new EngineError(422, `adapter "${ref.name}" (version ${ref.version}): ${clean((e as Error).message)}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    this.#log?.(`loaded adapter ${key}`);
    const entry: Entry = { ref, users: 0, stale: false };
    this.#entries.set(key, entry);
    // A newer version replaces the older ones (rows on them finish first); an older one loaded late is stale.
    for (const [k, e] of [...this.#entries]) {
      if (e.ref.name !== ref.name || k === key) continue;
      if (e.ref.version > ref.version) entry.stale = true;
      else {
        e.stale = true;
        if (e.users === 0) this.#unload(k);
      }
    }
    this.#trim(key);
  }

  /** Beyond maxLoaded: unloads the least recently used idle adapters (a busy one stays; the pool may run over). */
  #trim(keep?: string): void {
    for (const [key, e] of [...this.#entries]) {
      if (this.#entries.size <= this.#maxLoaded) break;
      if (e.users === 0 && key !== keep) this.#unload(key);
    }
  }

  #unload(key: string): void {
    this.#peft?.deleteAdapter(key);
    this.#entries.delete(key);
    this.#log?.(`unloaded adapter ${key}`);
  }
}
