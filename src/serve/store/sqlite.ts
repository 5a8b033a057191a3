// The SQLite store (`sqlite:FILE`, better-sqlite3 12.x: 13.x needs Node 22): one file, WAL mode so
// readers never wait for a writer, several processes may share it. better-sqlite3 is synchronous, so
// every statement of a handle runs in order through one queue, and a transaction (BEGIN IMMEDIATE: it
// takes the write lock first, waiting up to busy_timeout for another process) is never interleaved with
// the handle's other statements while it awaits between them.

import Database from 'better-sqlite3';
import { dirname } from 'node:path';
import { existsSync } from 'node:fs';
import type { Row, SqlDriver, SqlRunner } from './sql-store.js';
import { StoreError } from './types.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS vera_adapter_names (name TEXT PRIMARY KEY, last_version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS vera_adapters (
  name TEXT PRIMARY KEY, version INTEGER NOT NULL, owner TEXT, bytes INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS vera_adapters_owner ON vera_adapters (owner);
CREATE TABLE IF NOT EXISTS vera_adapter_versions (
  name TEXT NOT NULL, version INTEGER NOT NULL, owner TEXT, config BLOB NOT NULL, weights BLOB NOT NULL,
  bytes INTEGER NOT NULL, created_at INTEGER NOT NULL, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS vera_keys (
  id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, tenant TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin', 'tenant')), created_at INTEGER NOT NULL, revoked_at INTEGER);
`;

/** SQLITE_BUSY and friends: another process holds the write lock beyond busy_timeout. */
function wrap(spec: string, e: unknown): unknown {
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' && /^SQLITE_(BUSY|LOCKED|IOERR|CANTOPEN|FULL|READONLY)/.test(code))
    return new StoreError('unavailable', `store ${spec}: ${(e as Error).message} (${code})`, { cause: e });
  return e;
}

export class SqliteDriver implements SqlDriver {
  readonly kind = 'sqlite' as const;
  readonly forUpdate = '';
  readonly #db: Database.Database;
  #queue: Promise<unknown> = Promise.resolve();
  #statements = new Map<string, Database.Statement>();

  constructor(
    readonly spec: string,
    file: string,
    busyTimeoutMs = 10_000,
  ) {
    if (file !== ':memory:' && !existsSync(dirname(file)))
      throw new StoreError('spec', `store ${spec}: the folder ${dirname(file)} does not exist`);
    try {
      this.#db = new Database(file);
      this.#db.pragma(`busy_timeout = ${busyTimeoutMs}`);
      this.#db.pragma('journal_mode = WAL');
      // Every committed put survives a power loss too (puts are rare; reads are not slowed).
      this.#db.pragma('synchronous = FULL');
      this.#db.exec(SCHEMA);
    } catch (e) {
      throw wrap(spec, e) instanceof StoreError
        ? wrap(spec, e)
        : new StoreError('spec', `store ${spec}: cannot open: ${(e as Error).message}`, { cause: e });
    }
  }

  #run(sql: string, params: readonly unknown[]): Row[] {
    let st = this.#statements.get(sql);
    if (!st) this.#statements.set(sql, (st = this.#db.prepare(sql)));
    try {
      return st.reader ? (st.all(...params) as Row[]) : (st.run(...params), []);
    } catch (e) {
      throw wrap(this.spec, e);
    }
  }

  /** Queues `fn` behind everything this handle has started. */
  #enqueue<T>(fn: () => Promise<T> | T): Promise<T> {
    const next = this.#queue.then(fn, fn);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  query(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    return this.#enqueue(() => this.#run(sql, params));
  }

  transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T> {
    return this.#enqueue(async () => {
      this.#run('BEGIN IMMEDIATE', []);
      try {
        const out = await fn({ query: async (sql, params = []) => this.#run(sql, params) });
        this.#run('COMMIT', []);
        return out;
      } catch (e) {
        if (this.#db.inTransaction) this.#db.exec('ROLLBACK');
        throw e;
      }
    });
  }

  isUniqueViolation(e: unknown): boolean {
    return /^SQLITE_CONSTRAINT_(UNIQUE|PRIMARYKEY)$/.test(String((e as { code?: unknown }).code));
  }

  async close(): Promise<void> {
    await this.#enqueue(() => this.#db.close());
  }
}
