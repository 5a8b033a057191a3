// Shared by the serve tests.

import { type AdapterStore, openStore } from '../../src/serve/store/index.js';

/** A real folder store whose get() (the engine's adapter files) answers after `ms`. */
export async function slowStore(dir: string, ms: number): Promise<AdapterStore> {
  const store = await openStore(dir);
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
