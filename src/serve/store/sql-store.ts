// The adapter store over SQL, shared by SQLite (sqlite.ts) and PostgreSQL (postgres.ts): the drivers
// differ in connections, types and locking; the tables and every statement are the same.
//
//   vera_adapter_names    (name, last_version)   the highest version given to each name; never deleted,
//                                                so a version is never reused, also after a remove
//   vera_adapters         (name, version, owner, bytes, created_at)   the current version of each adapter
//                                                (what list() reads: no file bytes)
//   vera_adapter_versions (name, version, owner, config, weights, bytes, created_at)   the files: the
//                                                current version and the one it replaced
//   vera_keys             (id, hash, tenant, role, created_at, revoked_at)
//
// A put is one transaction: the name's row is locked first (PostgreSQL: SELECT … FOR UPDATE; SQLite:
// BEGIN IMMEDIATE locks the database), so two servers putting one name get consecutive versions and the
// last commit is current; the new version's row and the current pointer commit together or not at all.

import type { OpenOptions } from './options.js';
import { ownerConflict, prepareFiles } from './options.js';
import {
  type AdapterFiles,
  type AdapterInfo,
  type AdapterStore,
  type KeyRecord,
  type KeyTable,
  type PutOptions,
  type Role,
  type StoredAdapter,
  StoreError,
  filesBytes,
  isValidName,
} from './types.js';

export type Row = Record<string, unknown>;

/** Runs one statement with `?` placeholders; the rows it returns (none for a write without RETURNING). */
export interface SqlRunner {
  query(sql: string, params?: readonly unknown[]): Promise<Row[]>;
}

export interface SqlDriver extends SqlRunner {
  readonly kind: 'sqlite' | 'postgres';
  /** The spec, any password replaced by ***. */
  readonly spec: string;
  /** Runs `fn` in one write transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T>;
  /** ' FOR UPDATE' where the database locks rows (PostgreSQL), '' where a write transaction locks all. */
  readonly forUpdate: string;
  isUniqueViolation(e: unknown): boolean;
  close(): Promise<void>;
}

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
const bytes = (v: unknown): Uint8Array => (v instanceof Uint8Array ? v : new Uint8Array(v as ArrayBuffer));

function info(r: Row): AdapterInfo {
  return {
    name: String(r['name']),
    version: num(r['version']),
    owner: str(r['owner']),
    bytes: num(r['bytes']),
    createdAt: num(r['created_at']),
  };
}

const byName = (a: AdapterInfo, b: AdapterInfo) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
const COLUMNS = 'name, version, owner, bytes, created_at';

export class SqlStore implements AdapterStore {
  readonly keys: KeyTable;

  constructor(
    readonly db: SqlDriver,
    readonly opts: OpenOptions = {},
  ) {
    this.keys = new SqlKeys(db);
  }

  get kind() {
    return this.db.kind;
  }

  get spec() {
    return this.db.spec;
  }

  async list(tenant?: string): Promise<AdapterInfo[]> {
    const rows =
      tenant === undefined
        ? await this.db.query(`SELECT ${COLUMNS} FROM vera_adapters`)
        : await this.db.query(`SELECT ${COLUMNS} FROM vera_adapters WHERE owner IS NULL OR owner = ?`, [tenant]);
    // Sorted here: the databases' collations differ.
    return rows.map(info).sort(byName);
  }

  async get(name: string, opts: { version?: number } = {}): Promise<StoredAdapter | null> {
    if (!isValidName(name)) return null;
    // One statement: the pointer and the files of one snapshot.
    const rows =
      opts.version === undefined
        ? await this.db.query(
            `SELECT v.name, v.version, v.owner, v.bytes, v.created_at, v.config, v.weights FROM vera_adapters a
             JOIN vera_adapter_versions v ON v.name = a.name AND v.version = a.version WHERE a.name = ?`,
            [name],
          )
        : await this.db.query(`SELECT * FROM vera_adapter_versions WHERE name = ? AND version = ?`, [
            name,
            opts.version,
          ]);
    const r = rows[0];
    if (!r) return null;
    const files: AdapterFiles = {
      'adapter_config.json': bytes(r['config']),
      'adapter_model.safetensors': bytes(r['weights']),
    };
    return { ...info(r), files };
  }

  async version(name: string): Promise<number | null> {
    const r = (await this.db.query('SELECT version FROM vera_adapters WHERE name = ?', [name]))[0];
    return r ? num(r['version']) : null;
  }

  async info(name: string): Promise<AdapterInfo | null> {
    const r = (await this.db.query(`SELECT ${COLUMNS} FROM vera_adapters WHERE name = ?`, [name]))[0];
    return r ? info(r) : null;
  }

  async versions(): Promise<Map<string, number>> {
    const rows = await this.db.query('SELECT name, version FROM vera_adapters');
    return new Map(rows.map((r) => [String(r['name']), num(r['version'])]));
  }

  async put(name: string, files: AdapterFiles, owner: string | null, opts: PutOptions = {}): Promise<AdapterInfo> {
    const ready = await prepareFiles(name, files, owner, this.opts);
    const { forUpdate } = this.db;
    return this.db.transaction(async (tx) => {
      await tx.query(
        'INSERT INTO vera_adapter_names (name, last_version) VALUES (?, 0) ON CONFLICT (name) DO NOTHING',
        [name],
      );
      const seq = await tx.query(`SELECT last_version FROM vera_adapter_names WHERE name = ?${forUpdate}`, [name]);
      const cur = (await tx.query('SELECT version, owner FROM vera_adapters WHERE name = ?', [name]))[0];
      const curOwner = cur ? str(cur['owner']) : null;
      if (cur && curOwner !== owner && !opts.replaceOwner) throw ownerConflict(name, curOwner);
      const version = Math.max(num(seq[0]!['last_version']), cur ? num(cur['version']) : 0) + 1;
      const createdAt = Date.now();
      const size = filesBytes(ready);
      await tx.query('UPDATE vera_adapter_names SET last_version = ? WHERE name = ?', [version, name]);
      await tx.query(
        `INSERT INTO vera_adapter_versions (name, version, owner, config, weights, bytes, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
        [name, version, owner, ready['adapter_config.json'], ready['adapter_model.safetensors'], size, createdAt],
      );
      this.opts.onPutStep?.('written');
      await tx.query(
        `INSERT INTO vera_adapters (name, version, owner, bytes, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET version = excluded.version, owner = excluded.owner,
           bytes = excluded.bytes, created_at = excluded.created_at`,
        [name, version, owner, size, createdAt],
      );
      // Keep the new version and the one it replaced.
      await tx.query('DELETE FROM vera_adapter_versions WHERE name = ? AND version <> ? AND version <> ?', [
        name,
        version,
        cur ? num(cur['version']) : 0,
      ]);
      return { name, version, owner, bytes: size, createdAt };
    });
  }

  async remove(name: string, opts: { owner?: string | null } = {}): Promise<boolean> {
    if (!isValidName(name)) return false;
    return this.db.transaction(async (tx) => {
      const cur = (await tx.query(`SELECT owner FROM vera_adapters WHERE name = ?${this.db.forUpdate}`, [name]))[0];
      if (!cur || (opts.owner !== undefined && str(cur['owner']) !== opts.owner)) return false;
      await tx.query('DELETE FROM vera_adapters WHERE name = ?', [name]);
      await tx.query('DELETE FROM vera_adapter_versions WHERE name = ?', [name]);
      return true;
    });
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

function keyRecord(r: Row): KeyRecord {
  return {
    id: String(r['id']),
    hash: String(r['hash']),
    tenant: String(r['tenant']),
    role: String(r['role']) as Role,
    createdAt: num(r['created_at']),
    revokedAt: r['revoked_at'] === null || r['revoked_at'] === undefined ? null : num(r['revoked_at']),
  };
}

class SqlKeys implements KeyTable {
  constructor(readonly db: SqlDriver) {}

  async insert(k: KeyRecord): Promise<void> {
    try {
      await this.db.query(
        'INSERT INTO vera_keys (id, hash, tenant, role, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)',
        [k.id, k.hash, k.tenant, k.role, k.createdAt, k.revokedAt],
      );
    } catch (e) {
      if (this.db.isUniqueViolation(e)) throw new StoreError('conflict', `key ${k.id} exists`, { cause: e });
      throw e;
    }
  }

  async byHash(hash: string): Promise<KeyRecord | null> {
    const r = (await this.db.query('SELECT * FROM vera_keys WHERE hash = ?', [hash]))[0];
    return r ? keyRecord(r) : null;
  }

  async list(): Promise<KeyRecord[]> {
    return (await this.db.query('SELECT * FROM vera_keys ORDER BY created_at, id')).map(keyRecord);
  }

  async revoke(id: string, at: number): Promise<boolean> {
    const rows = await this.db.query(
      'UPDATE vera_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? RETURNING id',
      [at, id],
    );
    return rows.length > 0;
  }
}
