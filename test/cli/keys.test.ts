// `vera keys add|list|revoke` on a folder, SQLite and a real PostgreSQL store: the key is printed once
// and stored only as its hash; a revoked key no longer authenticates.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApiKeys } from '../../src/serve/auth/keys.js';
import { openStore } from '../../src/serve/store/index.js';
import { type PgCluster, startPostgres } from '../helpers/postgres.js';
import { scratch } from '../train/helpers.js';

const BIN = fileURLToPath(new URL('../../../bin/vera.js', import.meta.url));

function vera(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { encoding: 'utf8', env: { ...process.env, VERA_STORE: '' } },
      (err, stdout, stderr) => {
        const code = err ? (err as { code?: unknown }).code : 0;
        resolve({ status: typeof code === 'number' ? code : -1, stdout, stderr });
      },
    );
  });
}

const { dir: root, cleanup } = scratch('cli-keys');
let cluster: PgCluster;
before(async () => {
  cluster = await startPostgres();
});
after(() => {
  cluster?.stop();
  cleanup();
});

let n = 0;
for (const kind of ['folder', 'sqlite', 'postgres'] as const) {
  describe(`vera keys on a ${kind} store`, () => {
    test('add prints the key once; list; revoke', async () => {
      const i = ++n;
      const spec =
        kind === 'folder'
          ? join(root, `f${i}`)
          : kind === 'sqlite'
            ? `sqlite:${join(root, `k${i}.db`)}`
            : await cluster.createDatabase(`keys_${i}`);
      let r = await vera('keys', 'add', '--tenant', 'acme', '--store', spec);
      assert.equal(r.status, 0, r.stderr);
      const key = r.stdout.trim();
      assert.match(key, /^vera-[0-9a-f]{12}-[0-9a-f]{64}$/);
      assert.match(r.stderr, /for tenant acme \(tenant\); it is not shown again/);
      const id = key.split('-')[1]!;
      r = await vera('keys', 'add', '--admin', '--store', spec, '--json');
      const admin = JSON.parse(r.stdout) as { tenant: string; role: string; key: string };
      assert.deepEqual([admin.tenant, admin.role], ['admin', 'admin']);
      r = await vera('keys', 'list', '--store', spec);
      assert.match(r.stdout, new RegExp(`^${id}\\tacme\\ttenant\\t\\S+\\tactive$`, 'm'));
      assert.ok(!r.stdout.includes(key.split('-')[2]!), 'list shows no secret');
      if (kind === 'folder')
        assert.ok(!readFileSync(join(spec, '.vera', 'keys.json'), 'utf8').includes(key.split('-')[2]!));
      const store = await openStore(spec);
      try {
        assert.equal((await new ApiKeys(store.keys, { cacheMs: 0 }).authenticate(`Bearer ${key}`)).tenant, 'acme');
        r = await vera('keys', 'revoke', id, '--store', spec);
        assert.deepEqual([r.status, r.stdout], [0, `revoked ${id}\n`]);
        await assert.rejects(new ApiKeys(store.keys, { cacheMs: 0 }).authenticate(`Bearer ${key}`), /was revoked/);
      } finally {
        await store.close();
      }
      assert.match(
        (await vera('keys', 'list', '--store', spec)).stdout,
        new RegExp(`^${id}\\tacme\\ttenant\\t\\S+\\trevoked `, 'm'),
      );
      r = await vera('keys', 'revoke', '000000000000', '--store', spec);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /^vera: no key with id "000000000000"/);
    });
  });
}

test('vera keys: errors are one line', async () => {
  const spec = `sqlite:${join(root, 'e.db')}`;
  assert.match((await vera('keys', 'add', '--store', spec)).stderr, /^vera: --tenant is required/);
  assert.match(
    (await vera('keys', 'add', '--tenant', '../x', '--store', spec)).stderr,
    /^vera: invalid tenant name "..\/x"/,
  );
  assert.match((await vera('keys', 'list')).stderr, /--store is required/);
  assert.match((await vera('keys', 'revoke', '--store', spec)).stderr, /takes ID/);
  assert.match(
    (await vera('keys', 'list', '--store', 'sqlite:/no/such/dir/x.db')).stderr,
    /^vera: store sqlite:\/no\/such\/dir\/x.db: the folder \/no\/such\/dir does not exist\n$/,
  );
  assert.equal((await vera('keys', '--help')).status, 0);
});
