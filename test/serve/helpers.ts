// Shared by the serve tests.

import { type AdapterStore, openStore } from '../../src/serve/store/index.js';

/** `store` with get() (what the engine loads adapter files with) answering after `ms`. */
export function delayed(store: AdapterStore, ms: number): AdapterStore {
  return {
    kind: store.kind,
    spec: store.spec,
    keys: store.keys,
    list: (t) => store.list(t),
    get: async (name, opts) => {
      await new Promise((r) => setTimeout(r, ms));
      return store.get(name, opts);
    },
    version: (name) => store.version(name),
    info: (name) => store.info(name),
    versions: () => store.versions(),
    put: (name, files, owner, opts) => store.put(name, files, owner, opts),
    remove: (name, opts) => store.remove(name, opts),
    close: () => store.close(),
  };
}

/** A real folder store over `dir` whose get() answers after `ms`. */
export async function slowStore(dir: string, ms: number): Promise<AdapterStore> {
  return delayed(await openStore(dir), ms);
}
