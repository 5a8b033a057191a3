// API keys on every store kind (folder, SQLite, a real PostgreSQL): the key text is never stored (only
// its sha256), authentication and its 401s in OpenAI's shape, revocation (at once here, within the
// cache time through another server), and seeding the first admin key from VERA_ADMIN_KEY.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApiError, errorReply } from '../../src/serve/auth/errors.js';
import { ApiKeys, hashKey } from '../../src/serve/auth/keys.js';
import { type AdapterStore, openStore } from '../../src/serve/store/index.js';
import { StoreError } from '../../src/serve/store/types.js';
import { type PgCluster, startPostgres } from '../helpers/postgres.js';
import { scratch } from '../train/helpers.js';

const { dir: root, cleanup } = scratch('keys');
let cluster: PgCluster;
const stores: AdapterStore[] = [];
before(async () => {
  cluster = await startPostgres();
});
after(async () => {
  for (const s of stores) await s.close();
  cluster?.stop();
  cleanup();
});

/** Every byte under `dir`, as latin1 text (to search for a secret). */
function allBytes(dir: string): string {
  let out = '';
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    out += statSync(p).isDirectory() ? allBytes(p) : readFileSync(p).toString('latin1');
  }
  return out;
}

async function rejects401(p: Promise<unknown>, code: string, message: RegExp) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ApiError);
    const r = errorReply(e);
    assert.equal(r.status, 401);
    assert.equal(r.json.error.type, 'invalid_request_error');
    assert.equal(r.json.error.code, code);
    assert.match(r.json.error.message, message);
    assert.equal(r.headers['www-authenticate'], 'Bearer');
    return true;
  });
}

let n = 0;
for (const kind of ['folder', 'sqlite', 'postgres'] as const) {
  describe(`keys on a ${kind} store`, () => {
    const open = async () => {
      const i = ++n;
      const spec =
        kind === 'folder'
          ? join(root, `f${i}`)
          : kind === 'sqlite'
            ? `sqlite:${join(root, `k${i}.db`)}`
            : await cluster.createDatabase(`keys_${i}`);
      const store = await openStore(spec);
      stores.push(store);
      return { spec, store };
    };

    test('create and authenticate; only the hash is stored', async () => {
      const { spec, store } = await open();
      const keys = new ApiKeys(store.keys);
      assert.equal(await keys.any(), false);
      const made = await keys.create({ tenant: 'acme' });
      assert.match(made.key, /^vera-[0-9a-f]{12}-[0-9a-f]{64}$/);
      assert.equal(made.info.tenant, 'acme');
      assert.equal(made.info.role, 'tenant');
      assert.equal(made.key.split('-')[1], made.info.id);
      assert.deepEqual(await keys.authenticate(`Bearer ${made.key}`), {
        keyId: made.info.id,
        tenant: 'acme',
        role: 'tenant',
      });
      assert.deepEqual(await keys.authenticate(`bearer  ${made.key} `), await keys.authenticate(`Bearer ${made.key}`));
      assert.equal(await keys.any(), true);
      // The store holds the hash, never the text or its secret.
      const secret = made.key.split('-')[2]!;
      const rows = await store.keys.list();
      assert.equal(rows[0]!.hash, hashKey(made.key));
      assert.ok(!JSON.stringify(rows).includes(secret));
      assert.ok(!JSON.stringify(await keys.list()).includes(rows[0]!.hash), 'list() shows no hash');
      if (kind === 'folder') assert.ok(!allBytes(spec).includes(secret));
      if (kind === 'sqlite') {
        await store.close();
        const file = spec.slice('sqlite:'.length);
        for (const f of [file, `${file}-wal`]) {
          try {
            assert.ok(!readFileSync(f).toString('latin1').includes(secret), f);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
          }
        }
      }
    });

    test('401s: missing, malformed, unknown and revoked keys', async () => {
      const { store } = await open();
      const keys = new ApiKeys(store.keys);
      const made = await keys.create({ tenant: 'acme' });
      await rejects401(keys.authenticate(undefined), 'missing_api_key', /didn't provide an API key/);
      await rejects401(keys.authenticate(''), 'missing_api_key', /Bearer/);
      await rejects401(keys.authenticate(`Basic ${made.key}`), 'invalid_api_key', /must be "Bearer <key>"/);
      const wrong = made.key.slice(0, -1) + (made.key.endsWith('0') ? '1' : '0');
      await rejects401(
        keys.authenticate(`Bearer ${wrong}`),
        'invalid_api_key',
        new RegExp(`vera-${made.info.id}-\\*\\*\\*`),
      );
      await assert.rejects(
        keys.authenticate(`Bearer ${wrong}`),
        (e: Error) => !e.message.includes(wrong.split('-')[2]!),
      );
      assert.equal(await keys.revoke(made.info.id), true);
      await rejects401(keys.authenticate(`Bearer ${made.key}`), 'revoked_api_key', /was revoked/);
      assert.equal(await keys.revoke('000000000000'), false);
      assert.notEqual((await keys.list())[0]!.revokedAt, null);
      assert.equal(await keys.any(), false);
    });

    test('revoked through another server: refused once the cache time has passed', async () => {
      const { store } = await open();
      let now = 1_000_000;
      const a = new ApiKeys(store.keys, { cacheMs: 2000, now: () => now });
      const b = new ApiKeys(store.keys, { now: () => now });
      const made = await a.create({ tenant: 'acme', role: 'admin' });
      assert.equal((await a.authenticate(`Bearer ${made.key}`)).role, 'admin');
      await b.revoke(made.info.id);
      now += 1000;
      assert.equal((await a.authenticate(`Bearer ${made.key}`)).tenant, 'acme', 'still cached');
      now += 1500;
      await rejects401(a.authenticate(`Bearer ${made.key}`), 'revoked_api_key', /revoked/);
    });

    test('while the store is unavailable a key checked before keeps working; an unknown one gets 503', async () => {
      const { store } = await open();
      let now = 1_000_000;
      let down = false;
      const table = new Proxy(store.keys, {
        get(t, k) {
          const v = Reflect.get(t, k, t) as unknown;
          if (k === 'byHash')
            return async (h: string) => {
              if (down) throw new StoreError('unavailable', 'store x: database unavailable: connection refused');
              return (v as (h: string) => Promise<unknown>).call(t, h);
            };
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
        },
      });
      const keys = new ApiKeys(table, { cacheMs: 2000, now: () => now });
      const made = await keys.create({ tenant: 'acme', role: 'tenant' });
      const other = await keys.create({ tenant: 'beta', role: 'tenant' });
      assert.equal((await keys.authenticate(`Bearer ${made.key}`)).tenant, 'acme');
      down = true;
      now += 60_000; // long past the cache time
      assert.equal((await keys.authenticate(`Bearer ${made.key}`)).tenant, 'acme');
      await assert.rejects(
        keys.authenticate(`Bearer ${other.key}`),
        (e: Error) => e instanceof StoreError && e.status === 503,
      );
      down = false;
      assert.equal((await keys.authenticate(`Bearer ${other.key}`)).tenant, 'beta');
    });

    test('VERA_ADMIN_KEY seeds the first admin key once', async () => {
      const { store } = await open();
      const keys = new ApiKeys(store.keys);
      assert.equal(await keys.seedAdmin(undefined), null);
      await assert.rejects(keys.seedAdmin('short'), /at least 20 characters/);
      const text = 'an-admin-key-of-enough-length';
      const first = (await keys.seedAdmin(text))!;
      assert.equal(first.role, 'admin');
      assert.deepEqual(await keys.seedAdmin(text), first);
      assert.equal((await keys.list()).length, 1);
      assert.deepEqual(await keys.authenticate(`Bearer ${text}`), { keyId: first.id, tenant: 'admin', role: 'admin' });
      // A key made by `vera keys add` keeps its id when given as VERA_ADMIN_KEY on another store.
      const made = await keys.create({ tenant: 'ops', role: 'admin' });
      const other = await open();
      assert.equal((await new ApiKeys(other.store.keys).seedAdmin(made.key))!.id, made.info.id);
    });
  });
}
