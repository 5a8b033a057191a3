// The adapter store's contract, shared by its three backends (folder.ts, sqlite.ts, postgres.ts; picked
// by openStore in index.ts) and by the API keys of ../auth, which live in the same backend.
//
// An adapter is two files, adapter_config.json and adapter_model.safetensors, under a name, with an
// owner (a tenant, or null: usable by every tenant) and a version: a positive integer that grows on
// every put of that name and is never reused for it, also after a remove. A put stores a new version
// and makes it current in one step, so a reader gets the old version's files or the new one's, never
// a mix; get() returns bytes in memory, so a reader that has them keeps them whatever happens after.
// Each store keeps the previous version too (get(name, { version })), then drops it on the next put.
//
// Errors are StoreError with a code and the HTTP status a server answers with (see STATUS).

/** The files of an adapter, by file name. */
export const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'] as const;
export type AdapterFileName = (typeof ADAPTER_FILES)[number];
export type AdapterFiles = Record<AdapterFileName, Uint8Array>;

/** What list() says of an adapter: no file bytes. */
export interface AdapterInfo {
  name: string;
  version: number;
  /** The tenant that owns it; null: no owner (usable by every tenant, managed by admins). */
  owner: string | null;
  /** The two files' sizes together. */
  bytes: number;
  /** When this version was stored (ms since the epoch). */
  createdAt: number;
}

/** What get() returns: the info and the files of one version. */
export interface StoredAdapter extends AdapterInfo {
  files: AdapterFiles;
}

export type Role = 'admin' | 'tenant';

/** An API key as stored: the hash of the key, never the key itself (see ../auth/keys.ts). */
export interface KeyRecord {
  /** Public identifier (also part of the key text), used to list and revoke. */
  id: string;
  /** sha256 of the whole key text, hex. */
  hash: string;
  tenant: string;
  role: Role;
  createdAt: number;
  /** When it was revoked (ms since the epoch), or null. */
  revokedAt: number | null;
}

/** The raw key table of a store; ../auth/keys.ts builds keys, authentication and seeding on it. */
export interface KeyTable {
  /** Adds a key; a StoreError 'conflict' when its id or hash exists. */
  insert(record: KeyRecord): Promise<void>;
  /** The key whose hash is `hash`, revoked or not. */
  byHash(hash: string): Promise<KeyRecord | null>;
  /** Every key, oldest first. */
  list(): Promise<KeyRecord[]>;
  /** Marks a key revoked; false when no key has this id. Revoking twice keeps the first time. */
  revoke(id: string, at: number): Promise<boolean>;
}

/** Checks an adapter before it is stored; throws (any Error) with the reason it cannot be served. */
export type AdapterValidator = (name: string, files: AdapterFiles) => void | Promise<void>;

export interface PutOptions {
  /**
   * Replace an adapter that another owner holds (admins moving an adapter between tenants). Without it
   * a put over another owner's adapter fails with 'conflict' and changes nothing.
   */
  replaceOwner?: boolean;
}

export interface AdapterStore {
  readonly kind: 'folder' | 'sqlite' | 'postgres';
  /** The spec it was opened with, any password replaced by ***. */
  readonly spec: string;
  /**
   * The adapters, by name. With `tenant`, only those that tenant may use: its own and those without an
   * owner (admins pass nothing).
   */
  list(tenant?: string): Promise<AdapterInfo[]>;
  /** The current version of `name` (or the given one, while the store still keeps it); null when absent. */
  get(name: string, opts?: { version?: number }): Promise<StoredAdapter | null>;
  /** The current version of `name`, null when absent: one cheap look-up, for noticing re-uploads. */
  version(name: string): Promise<number | null>;
  /** The current version's info (no file bytes), null when absent: one cheap look-up, per request. */
  info(name: string): Promise<AdapterInfo | null>;
  /** Every adapter's current version: one cheap look-up (no file bytes), for polling (see watchStore). */
  versions(): Promise<Map<string, number>>;
  /**
   * Validates the files (their structure, then the store's validator, if any: see openStore) and stores
   * them as the new current version of `name`, owned by `owner`. Nothing is stored when anything fails.
   */
  put(name: string, files: AdapterFiles, owner: string | null, opts?: PutOptions): Promise<AdapterInfo>;
  /**
   * Removes `name` and its versions; false when absent. With `owner`, only an adapter of that owner is
   * removed (another's answers false, as if absent).
   */
  remove(name: string, opts?: { owner?: string | null }): Promise<boolean>;
  /** The API keys kept in the same place. */
  readonly keys: KeyTable;
  close(): Promise<void>;
}

export type StoreErrorCode = 'spec' | 'unavailable' | 'invalid' | 'conflict' | 'name';

/** The HTTP status a server answers a StoreError with. */
export const STATUS: Record<StoreErrorCode, number> = {
  spec: 500,
  unavailable: 503,
  invalid: 422,
  conflict: 409,
  name: 400,
};

export class StoreError extends Error {
  override name = 'StoreError';
  readonly status: number;
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.status = STATUS[code];
  }
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * Throws StoreError 'name' unless `name` is a valid adapter or tenant name: 1–128 characters of
 * letters, digits, '.', '_' and '-', starting with a letter or digit (so never a path, never hidden).
 */
export function checkName(name: unknown, what = 'adapter name'): asserts name is string {
  if (typeof name !== 'string' || !NAME.test(name) || name === '__base__')
    throw new StoreError(
      'name',
      `invalid ${what} ${JSON.stringify(name)}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit${name === '__base__' ? ' (__base__ means the base model)' : ''}`,
    );
}

/** True for a valid name (see checkName). */
export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME.test(name) && name !== '__base__';
}

/** The two files' sizes together. */
export function filesBytes(files: AdapterFiles): number {
  return files['adapter_config.json'].byteLength + files['adapter_model.safetensors'].byteLength;
}
