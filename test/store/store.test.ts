// The adapter store's contract, run against each backend: a folder, SQLite and a real PostgreSQL (a
// throwaway cluster, test/helpers/postgres.ts). Versions, owners, refusals that store nothing, the key
// table, a put killed half-way, and puts from two processes at once.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type AdapterStore, type KeyRecord, StoreError, openStore } from '../../src/serve/store/index.js';
import type { OpenOptions } from '../../src/serve/store/options.js';
import { type PgCluster, startPostgres } from '../helpers/postgres.js';
import { fixtureFiles } from '../helpers/store-child.js';
import { scratch } from '../train/helpers.js';

const CHILD = fileURLToPath(new URL('../helpers/store-child.js', import.meta.url));
const run = promisify(execFile);

const { dir: root, cleanup } = scratch('store');
let cluster: PgCluster;
before(async () => {
  cluster = await startPostgres();
});
after(() => {
  cluster?.stop();
  cleanup();
});

let fresh = 0;
/** A spec naming a new, empty store of `kind`. */
async function newSpec(kind: string): Promise<string> {
  const n = ++fresh;
  if (kind === 'folder') return join(root, `folder-${n}`);
  if (kind === 'sqlite') return `sqlite:${join(root, `store-${n}.db`)}`;
  return cluster.createDatabase(`store_${n}`);
}

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
const configOf = (a: { files: { 'adapter_config.json': Uint8Array } }) =>
  JSON.parse(text(a.files['adapter_config.json'])) as Record<string, unknown>;

async function rejects(p: Promise<unknown>, code: string, status: number, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof StoreError, `not a StoreError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.status, status);
    assert.match(e.message, message);
    return true;
  });
}

for (const kind of ['folder', 'sqlite', 'postgres'] as const) {
  describe(`${kind} store`, () => {
    const open = async (opts: OpenOptions = {}) => {
      const spec = await newSpec(kind);
      return { spec, store: await openStore(spec, opts) };
    };
    const stores: AdapterStore[] = [];
    after(async () => {
      for (const s of stores) await s.close();
    });
    const track = (s: AdapterStore) => (stores.push(s), s);

    test('put, get, list, versions: the previous version is kept, older ones dropped', async () => {
      const store = track((await open()).store);
      assert.equal(store.kind, kind);
      assert.deepEqual(await store.list(), []);
      assert.equal(await store.get('a'), null);
      const files = fixtureFiles({ n: 1 });
      const v1 = await store.put('a', files, null);
      assert.equal(v1.version, 1);
      assert.equal(v1.bytes, files['adapter_config.json'].byteLength + files['adapter_model.safetensors'].byteLength);
      const got = (await store.get('a'))!;
      assert.deepEqual(Buffer.from(got.files['adapter_model.safetensors']), files['adapter_model.safetensors']);
      assert.equal(configOf(got)['n'], 1);
      assert.equal((await store.put('a', fixtureFiles({ n: 2 }), null)).version, 2);
      assert.equal((await store.put('b', fixtureFiles(), null)).version, 1);
      assert.equal(configOf((await store.get('a'))!)['n'], 2);
      assert.equal(configOf((await store.get('a', { version: 1 }))!)['n'], 1);
      assert.equal((await store.put('a', fixtureFiles({ n: 3 }), null)).version, 3);
      assert.equal(await store.get('a', { version: 1 }), null, 'two versions back is dropped');
      assert.equal(configOf((await store.get('a', { version: 2 }))!)['n'], 2);
      assert.deepEqual(
        (await store.list()).map((i) => [i.name, i.version, i.owner]),
        [
          ['a', 3, null],
          ['b', 1, null],
        ],
      );
      assert.equal(await store.version('a'), 3);
      assert.deepEqual(
        await store.versions(),
        new Map([
          ['a', 3],
          ['b', 1],
        ]),
      );
    });

    test('remove: gone with its versions; a later put never reuses a version', async () => {
      const store = track((await open()).store);
      await store.put('a', fixtureFiles({ n: 1 }), null);
      await store.put('a', fixtureFiles({ n: 2 }), null);
      assert.equal(await store.remove('a'), true);
      assert.equal(await store.remove('a'), false);
      assert.equal(await store.get('a'), null);
      assert.equal(await store.get('a', { version: 1 }), null);
      assert.equal(await store.version('a'), null);
      assert.deepEqual(await store.list(), []);
      assert.equal((await store.put('a', fixtureFiles({ n: 3 }), null)).version, 3);
      assert.equal(await store.remove('../etc'), false);
    });

    test('a bad adapter or a refusing validator stores nothing and keeps the old version', async () => {
      let refuse = false;
      const store = track(
        (
          await open({
            validate: (name) => {
              if (refuse) throw new Error(`target modules do not match for ${name}`);
            },
          })
        ).store,
      );
      await store.put('a', fixtureFiles({ n: 1 }), null);
      const { peft_type: _drop, ...noType } = JSON.parse(text(fixtureFiles()['adapter_config.json'])) as Record<
        string,
        unknown
      >;
      const bad = { ...fixtureFiles(), 'adapter_config.json': Buffer.from(JSON.stringify(noType)) };
      await rejects(store.put('a', bad, null), 'invalid', 422, /adapter "a" refused: adapter_config.json: peft_type/);
      const torn = {
        ...fixtureFiles(),
        'adapter_model.safetensors': fixtureFiles()['adapter_model.safetensors'].subarray(0, 100),
      };
      await rejects(store.put('new', torn, null), 'invalid', 422, /adapter "new" refused: .*adapter_model.safetensors/);
      await rejects(
        store.put('a', { 'adapter_config.json': Buffer.from('{') } as never, null),
        'invalid',
        422,
        /adapter_model.safetensors is missing/,
      );
      await rejects(store.put('../x', fixtureFiles(), null), 'name', 400, /invalid adapter name "..\/x"/);
      await rejects(store.put('ok', fixtureFiles(), 'bad/owner'), 'name', 400, /owner/);
      refuse = true;
      await rejects(
        store.put('a', fixtureFiles({ n: 2 }), null),
        'invalid',
        422,
        /refused: target modules do not match for a/,
      );
      assert.equal(configOf((await store.get('a'))!)['n'], 1);
      assert.deepEqual(
        (await store.list()).map((i) => [i.name, i.version]),
        [['a', 1]],
      );
      refuse = false;
      // The refused puts consumed no version of "a" that a reader could see.
      assert.ok((await store.put('a', fixtureFiles({ n: 3 }), null)).version >= 2);
    });

    test('owners: a tenant lists its own and the owner-less; another owner is not replaced', async () => {
      const store = track((await open()).store);
      await store.put('mine', fixtureFiles(), 't1');
      await store.put('theirs', fixtureFiles(), 't2');
      await store.put('shared', fixtureFiles(), null);
      assert.deepEqual(
        (await store.list('t1')).map((i) => i.name),
        ['mine', 'shared'],
      );
      assert.deepEqual(
        (await store.list('t2')).map((i) => i.name),
        ['shared', 'theirs'],
      );
      assert.equal((await store.list()).length, 3);
      await rejects(
        store.put('theirs', fixtureFiles({ n: 9 }), 't1'),
        'conflict',
        409,
        /"theirs" exists with another owner/,
      );
      await rejects(store.put('shared', fixtureFiles(), 't1'), 'conflict', 409, /no owner/);
      assert.equal((await store.get('theirs'))!.owner, 't2');
      assert.equal(configOf((await store.get('theirs'))!)['n'], undefined);
      assert.equal(await store.remove('theirs', { owner: 't1' }), false);
      assert.equal(await store.remove('shared', { owner: 't1' }), false);
      const moved = await store.put('theirs', fixtureFiles(), 't1', { replaceOwner: true });
      assert.deepEqual([moved.owner, moved.version], ['t1', 2]);
      assert.equal(await store.remove('theirs', { owner: 't1' }), true);
    });

    test('key table: insert, look-up by hash, conflicts, list, revoke once', async () => {
      const store = track((await open()).store);
      const rec = (id: string, t: number): KeyRecord => ({
        id,
        hash: `${id}`.padEnd(64, '0'),
        tenant: 't1',
        role: 'tenant',
        createdAt: t,
        revokedAt: null,
      });
      await store.keys.insert(rec('k2', 2000));
      await store.keys.insert(rec('k1', 1000));
      await rejects(store.keys.insert(rec('k1', 3000)), 'conflict', 409, /k1/);
      await rejects(store.keys.insert({ ...rec('k3', 3000), hash: rec('k2', 0).hash }), 'conflict', 409, /k3/);
      assert.deepEqual(await store.keys.byHash(rec('k2', 0).hash), rec('k2', 2000));
      assert.equal(await store.keys.byHash('f'.repeat(64)), null);
      assert.deepEqual(
        (await store.keys.list()).map((k) => k.id),
        ['k1', 'k2'],
      );
      assert.equal(await store.keys.revoke('k1', 5000), true);
      assert.equal(await store.keys.revoke('k1', 6000), true);
      assert.equal(await store.keys.revoke('nope', 6000), false);
      assert.equal((await store.keys.list())[0]!.revokedAt, 5000);
    });

    test('a put killed after writing its bytes leaves the old version current and the store usable', async () => {
      const { spec, store } = await open();
      track(store);
      await store.put('a', fixtureFiles({ n: 1 }), null);
      await assert.rejects(run(process.execPath, [CHILD, spec, 'crash', 'a', '1']), (e: { signal?: string }) => {
        assert.equal(e.signal, 'SIGKILL');
        return true;
      });
      const again = track(await openStore(spec));
      const cur = (await again.get('a'))!;
      assert.equal(cur.version, 1);
      assert.equal(configOf(cur)['n'], 1);
      assert.deepEqual(
        (await again.list()).map((i) => i.name),
        ['a'],
      );
      const next = await again.put('a', fixtureFiles({ n: 2 }), null);
      assert.ok(next.version >= 2);
      assert.equal(configOf((await store.get('a'))!)['n'], 2, 'the first handle sees the second one’s put');
    });

    test('two processes putting one name: distinct consecutive versions, the last one current', async () => {
      const { spec, store } = await open();
      track(store);
      const n = 20;
      const start = String(Date.now() + 700); // both past node's start-up, so their puts overlap
      const [a, b] = await Promise.all(
        [0, 1].map(
          async () =>
            JSON.parse((await run(process.execPath, [CHILD, spec, 'puts', 'x', String(n), start])).stdout) as number[],
        ),
      );
      const all = [...a!, ...b!].sort((p, q) => p - q);
      assert.deepEqual(
        all,
        Array.from({ length: 2 * n }, (_, i) => i + 1),
      );
      const cur = (await store.get('x'))!;
      assert.equal(cur.version, 2 * n);
      // The current files are those of the put that got the last version.
      const writer = configOf(cur)['writer'];
      const last = a!.includes(2 * n) ? a! : b!;
      assert.equal(configOf(cur)['n'], n - 1);
      assert.equal(typeof writer, 'number');
      assert.equal(last.at(-1), 2 * n);
    });
  });
}

describe('postgres store: the database going away', () => {
  test('statements fail with 503 while it is down; the store recovers by itself when it is back', async () => {
    const store = await openStore(await newSpec('postgres'));
    try {
      await store.put('a', fixtureFiles({ n: 1 }), null);
      cluster.stopServer();
      await rejects(store.list(), 'unavailable', 503, /database unavailable/);
      await rejects(store.put('a', fixtureFiles({ n: 2 }), null), 'unavailable', 503, /database unavailable/);
      cluster.startServer();
      // The pool drops its dead connections as they fail; within a few tries a new one answers.
      let list = null;
      for (let i = 0; i < 10 && list === null; i++) list = await store.list().catch(() => null);
      assert.deepEqual(
        list?.map((x) => [x.name, x.version]),
        [['a', 1]],
      );
      assert.equal((await store.put('a', fixtureFiles({ n: 3 }), null)).version, 2);
    } finally {
      await store.close();
    }
  });
});

describe('folder store: today’s adapter folder', () => {
  test('a folder copied in by hand is version 1 with no owner; a put replaces it and the folder stays servable', async () => {
    const { cpSync, existsSync, readdirSync } = await import('node:fs');
    const { findAdapters } = await import('../../src/serve/server.js');
    const spec = await newSpec('folder');
    cpSync(
      fileURLToPath(new URL('../../../test/parity/fixtures/adapters/gpt2-vera/', import.meta.url)),
      join(spec, 'hand'),
      {
        recursive: true,
      },
    );
    const store = await openStore(spec);
    assert.deepEqual(
      (await store.list()).map((i) => [i.name, i.version, i.owner]),
      [['hand', 1, null]],
    );
    assert.equal((await store.put('hand', fixtureFiles({ n: 2 }), null)).version, 2);
    assert.equal(configOf((await store.get('hand'))!)['n'], 2);
    assert.equal(configOf((await store.get('hand', { version: 1 }))!)['n'], undefined, 'the hand-placed one kept');
    await store.put('other', fixtureFiles(), 't1');
    // `vera serve --adapters DIR` (findAdapters) sees the store's adapters, and nothing of .vera/.
    assert.deepEqual([...findAdapters(spec).keys()], ['hand', 'other']);
    assert.deepEqual(readdirSync(join(spec, '.vera', 'tmp')), []);
    assert.ok(existsSync(join(spec, 'hand', 'adapter_model.safetensors')));
    await store.close();
  });
});
