// API keys: text `vera-<id>-<secret>` (id: 12 hex digits, public, used to list and revoke; secret: 32
// random bytes as hex), stored only as the sha256 of the whole text, so a copy of the store gives no key
// away. Bound to a tenant and a role (admin or tenant).
//
// authenticate(header) looks the bearer token's hash up (a hash look-up: the time taken says nothing
// about the secret) and answers 401 in OpenAI's shape when it is missing, unknown or revoked. Keys found
// are cached for `cacheMs` (default 2 s), so a key revoked through another server stops working within
// that time; one revoked through this object stops at once. While the store is unavailable, a key
// found before keeps its last known state (a database restart does not lock out every client).
//
// VERA_ADMIN_KEY seeds the first admin key: seedAdmin() stores its hash (tenant "admin") unless it is
// there already; any text of 20+ characters works (a `vera-…` key keeps its id).

import { createHash, randomBytes } from 'node:crypto';
import type { KeyRecord, KeyTable, Role } from '../store/types.js';
import { StoreError, checkName } from '../store/types.js';
import { ApiError } from './errors.js';
import type { Principal } from './policy.js';

const KEY = /^vera-([0-9a-f]{12})-[0-9a-f]{64}$/;
const MIN_ADMIN_KEY = 20;

export function hashKey(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** A new key's text and id. */
export function newKeyText(): { id: string; text: string } {
  const id = randomBytes(6).toString('hex');
  return { id, text: `vera-${id}-${randomBytes(32).toString('hex')}` };
}

/** A key as listed: everything but the hash. */
export type KeyInfo = Omit<KeyRecord, 'hash'>;

const info = ({ hash: _hash, ...rest }: KeyRecord): KeyInfo => rest;

/** A key named in a message: its id only, never its secret. */
function shown(text: string): string {
  const m = KEY.exec(text);
  return m ? `vera-${m[1]}-***` : `${text.slice(0, 4)}***`;
}

function unauthorized(message: string, code: string): ApiError {
  return new ApiError(401, message, { code, headers: { 'www-authenticate': 'Bearer' } });
}

export interface ApiKeysOptions {
  /** How long a found key is trusted without a look-up (ms); default 2000, 0 for none. */
  cacheMs?: number;
  now?: () => number;
}

export class ApiKeys {
  readonly #cache = new Map<string, { record: KeyRecord; at: number }>();
  readonly #cacheMs: number;
  readonly #now: () => number;

  constructor(
    readonly table: KeyTable,
    opts: ApiKeysOptions = {},
  ) {
    this.#cacheMs = opts.cacheMs ?? 2000;
    this.#now = opts.now ?? Date.now;
  }

  /** A new key for `tenant`: its text (shown once: only its hash is kept) and its record. */
  async create(opts: { tenant: string; role?: Role }): Promise<{ key: string; info: KeyInfo }> {
    const role = opts.role ?? 'tenant';
    if (role !== 'admin' && role !== 'tenant')
      throw new StoreError('name', `invalid role ${JSON.stringify(role)}: use "admin" or "tenant"`);
    checkName(opts.tenant, 'tenant name');
    const { id, text } = newKeyText();
    const record: KeyRecord = {
      id,
      hash: hashKey(text),
      tenant: opts.tenant,
      role,
      createdAt: this.#now(),
      revokedAt: null,
    };
    await this.table.insert(record);
    return { key: text, info: info(record) };
  }

  async list(): Promise<KeyInfo[]> {
    return (await this.table.list()).map(info);
  }

  /** Revokes key `id`; false when there is none. Revoking twice keeps the first time. */
  async revoke(id: string): Promise<boolean> {
    const done = await this.table.revoke(id, this.#now());
    for (const [h, c] of this.#cache) if (c.record.id === id) this.#cache.delete(h);
    return done;
  }

  /** Whether any key that is not revoked exists (a server without one runs open, on 127.0.0.1 only). */
  async any(): Promise<boolean> {
    return (await this.table.list()).some((k) => k.revokedAt === null);
  }

  /**
   * The principal of an `Authorization` header value; ApiError 401 (OpenAI's shape, code
   * missing_api_key / invalid_api_key / revoked_api_key) otherwise. A StoreError 'unavailable' (503)
   * passes through: a database that is down is not a bad key.
   */
  async authenticate(header: string | undefined): Promise<Principal> {
    if (header === undefined || header.trim() === '')
      throw unauthorized(
        'You didn\'t provide an API key. Send it in the Authorization header: "Authorization: Bearer <key>".',
        'missing_api_key',
      );
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!m) throw unauthorized('The Authorization header must be "Bearer <key>".', 'invalid_api_key');
    const text = m[1]!;
    const record = await this.#lookup(hashKey(text));
    if (!record) throw unauthorized(`Incorrect API key provided: ${shown(text)}.`, 'invalid_api_key');
    if (record.revokedAt !== null) throw unauthorized(`API key ${shown(text)} was revoked.`, 'revoked_api_key');
    return { keyId: record.id, tenant: record.tenant, role: record.role };
  }

  async #lookup(hash: string): Promise<KeyRecord | null> {
    const now = this.#now();
    const hit = this.#cache.get(hash);
    if (hit && now - hit.at < this.#cacheMs) return hit.record;
    let record: KeyRecord | null;
    try {
      record = await this.table.byHash(hash);
    } catch (e) {
      // The store is down (a database restarting): a key this server checked before keeps working as
      // it was until the store answers again; an unknown key still gets the store's 503.
      if (hit && e instanceof StoreError && e.code === 'unavailable') return hit.record;
      throw e;
    }
    if (record && this.#cacheMs > 0) {
      if (this.#cache.size >= 10_000) this.#cache.clear(); // a bound, not an LRU: refills cost one look-up each
      this.#cache.set(hash, { record, at: now });
    }
    return record;
  }

  /**
   * Stores `text` (default: $VERA_ADMIN_KEY) as an admin key of tenant "admin" unless its hash is there;
   * returns its record (null when no text is given). A seeded key that was revoked stays revoked.
   */
  async seedAdmin(text: string | undefined = process.env['VERA_ADMIN_KEY']): Promise<KeyInfo | null> {
    if (text === undefined || text === '') return null;
    if (text.length < MIN_ADMIN_KEY || /\s/.test(text))
      throw new StoreError('spec', `VERA_ADMIN_KEY must be at least ${MIN_ADMIN_KEY} characters without spaces`);
    const hash = hashKey(text);
    const existing = await this.table.byHash(hash);
    if (existing) return info(existing);
    const id = KEY.exec(text)?.[1] ?? `env${hash.slice(0, 9)}`;
    const record: KeyRecord = { id, hash, tenant: 'admin', role: 'admin', createdAt: this.#now(), revokedAt: null };
    try {
      await this.table.insert(record);
    } catch (e) {
      // Another server seeding the same key at the same moment.
      const again = e instanceof StoreError && e.code === 'conflict' ? await this.table.byHash(hash) : null;
      if (!again) throw e;
      return info(again);
    }
    return info(record);
  }
}
