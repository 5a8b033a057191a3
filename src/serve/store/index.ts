// openStore(spec, opts): the adapter store a spec names.
//
//   sqlite:FILE                 SQLite (better-sqlite3), one file; sqlite::memory: for a throwaway one
//   postgres://… postgresql://… PostgreSQL (pg); several servers may share it
//   anything else               a folder of adapter subfolders (today's --adapters DIR)
//
// opts.validate runs on every put (see validate.ts: baseModelValidator checks against the base model).

import { FolderStore } from './folder.js';
import type { OpenOptions } from './options.js';
import { PostgresDriver } from './postgres.js';
import { SqlStore } from './sql-store.js';
import { SqliteDriver } from './sqlite.js';
import { type AdapterStore, StoreError } from './types.js';

export type { OpenOptions } from './options.js';
export * from './types.js';
export { baseModelValidator, checkAdapterFiles } from './validate.js';

export type StoreKind = AdapterStore['kind'];

/** Which kind of store `spec` names (see the file comment). */
export function storeKind(spec: string): StoreKind {
  if (spec.startsWith('sqlite:')) return 'sqlite';
  if (/^postgres(ql)?:\/\//.test(spec)) return 'postgres';
  return 'folder';
}

export async function openStore(spec: string, opts: OpenOptions = {}): Promise<AdapterStore> {
  if (spec === '') throw new StoreError('spec', 'store: empty spec (give a folder, sqlite:FILE or postgres://…)');
  switch (storeKind(spec)) {
    case 'sqlite': {
      const file = spec.slice('sqlite:'.length);
      if (file === '') throw new StoreError('spec', `store ${spec}: give a file after "sqlite:"`);
      return new SqlStore(new SqliteDriver(spec, file), opts);
    }
    case 'postgres':
      return new SqlStore(await PostgresDriver.open(spec), opts);
    case 'folder':
      return new FolderStore(spec, opts);
  }
}
