// The PostgreSQL store (`postgres://…` or `postgresql://…`, through `pg`): several servers share one
// database. The tables are created when missing, under an advisory lock so that servers starting
// together do not race on CREATE TABLE. A lost connection (the database restarting) is a StoreError
// 'unavailable' (503) for the statements it breaks; the pool reconnects by itself on the next one.

import pg from 'pg';
import type { Row, SqlDriver, SqlRunner } from './sql-store.js';
import { StoreError } from './types.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS vera_adapter_names (name TEXT PRIMARY KEY, last_version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS vera_adapters (
  name TEXT PRIMARY KEY, version INTEGER NOT NULL, owner TEXT, bytes BIGINT NOT NULL, created_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS vera_adapters_owner ON vera_adapters (owner);
CREATE TABLE IF NOT EXISTS vera_adapter_versions (
  name TEXT NOT NULL, version INTEGER NOT NULL, owner TEXT, config BYTEA NOT NULL, weights BYTEA NOT NULL,
  bytes BIGINT NOT NULL, created_at BIGINT NOT NULL, PRIMARY KEY (name, version));
CREATE TABLE IF NOT EXISTS vera_keys (
  id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, tenant TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin', 'tenant')), created_at BIGINT NOT NULL, revoked_at BIGINT);
`;
/** Any constant: the advisory lock that serialises schema creation across servers. */
const SCHEMA_LOCK = 0x7e4a;

/** `?` placeholders (shared with SQLite) to PostgreSQL's $1, $2, … (no statement has '?' in a literal). */
function numbered(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}

/** The spec with any password replaced by ***. */
export function redact(spec: string): string {
  return spec.replace(/^(postgres(?:ql)?:\/\/[^:/@]*:)[^@]*@/, '$1***@');
}

/** Errors of the connection or of a server going down (classes 08, 53, 57P) become 'unavailable'. */
function wrap(spec: string, e: unknown): unknown {
  if (e instanceof StoreError) return e;
  const code = String((e as { code?: unknown }).code ?? '');
  const msg = (e as Error).message ?? String(e);
  const lost =
    /^(08|53|57P)/.test(code) ||
    /^(ECONNREFUSED|ECONNRESET|ENOTFOUND|ETIMEDOUT|EPIPE|ENOENT)$/.test(code) ||
    /Connection terminated|connection timeout|Client has encountered a connection error/i.test(msg);
  return lost ? new StoreError('unavailable', `store ${spec}: database unavailable: ${msg}`, { cause: e }) : e;
}

export class PostgresDriver implements SqlDriver {
  readonly kind = 'postgres' as const;
  readonly forUpdate = ' FOR UPDATE';
  readonly spec: string;
  readonly #pool: pg.Pool;

  private constructor(spec: string, pool: pg.Pool) {
    this.spec = redact(spec);
    this.#pool = pool;
  }

  static async open(spec: string, opts: { max?: number } = {}): Promise<PostgresDriver> {
    const pool = new pg.Pool({ connectionString: spec, max: opts.max ?? 10, connectionTimeoutMillis: 5_000 });
    // An idle client whose server went away emits 'error' on the pool; unhandled, it would end the process.
    pool.on('error', () => undefined);
    const d = new PostgresDriver(spec, pool);
    try {
      await d.transaction(async (tx) => {
        await tx.query(`SELECT pg_advisory_xact_lock(${SCHEMA_LOCK})`);
        for (const st of SCHEMA.split(';').filter((s) => s.trim())) await tx.query(st);
      });
    } catch (e) {
      await pool.end().catch(() => undefined);
      const w = wrap(d.spec, e);
      throw w instanceof StoreError
        ? w
        : new StoreError('spec', `store ${d.spec}: cannot create the tables: ${(e as Error).message}`, { cause: e });
    }
    return d;
  }

  async query(sql: string, params: readonly unknown[] = []): Promise<Row[]> {
    try {
      return (await this.#pool.query(numbered(sql), params as unknown[])).rows as Row[];
    } catch (e) {
      throw wrap(this.spec, e);
    }
  }

  async transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (e) {
      throw wrap(this.spec, e);
    }
    // pg-pool takes its 'error' listener off a client it lends: the connection dying between two
    // statements of the transaction (the database restarting) would be an unhandled 'error' ending the
    // process. The next statement fails instead (a StoreError 'unavailable'), and the client is dropped.
    let lost: Error | undefined;
    const onError = (e: Error) => (lost = e);
    client.on('error', onError);
    const tx: SqlRunner = {
      query: async (sql, params = []) => {
        try {
          return (await client.query(numbered(sql), params as unknown[])).rows as Row[];
        } catch (e) {
          throw wrap(this.spec, e);
        }
      },
    };
    let broken: unknown = undefined;
    try {
      await tx.query('BEGIN');
      const out = await fn(tx);
      await tx.query('COMMIT');
      return out;
    } catch (e) {
      try {
        await client.query('ROLLBACK');
      } catch (e2) {
        broken = e2; // the connection is gone: drop it rather than return it to the pool
      }
      throw e;
    } finally {
      client.off('error', onError);
      client.release(broken instanceof Error ? broken : lost);
    }
  }

  isUniqueViolation(e: unknown): boolean {
    return (e as { code?: unknown }).code === '23505';
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
