// `vera adapters push|list|rm` on a folder, SQLite and a real PostgreSQL store, and push --url to a
// running server's upload route.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { type Server, createServer } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { handleAdminRequest } from '../../src/serve/auth/admin-routes.js';
import { errorReply } from '../../src/serve/auth/errors.js';
import { ApiKeys } from '../../src/serve/auth/keys.js';
import { openStore } from '../../src/serve/store/index.js';
import { type PgCluster, startPostgres } from '../helpers/postgres.js';
import { fixtureModel, scratch } from '../train/helpers.js';

const BIN = fileURLToPath(new URL('../../../bin/vera.js', import.meta.url));
const ADAPTERS = fileURLToPath(new URL('../../../test/parity/fixtures/adapters/', import.meta.url));

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

const { dir: root, cleanup } = scratch('cli-adapters');
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
  describe(`vera adapters on a ${kind} store`, () => {
    test('push, push again, list, rm', async () => {
      const i = ++n;
      const spec =
        kind === 'folder'
          ? join(root, `f${i}`)
          : kind === 'sqlite'
            ? `sqlite:${join(root, `s${i}.db`)}`
            : await cluster.createDatabase(`cli_${i}`);
      const dir = join(ADAPTERS, 'gpt2-vera');
      let r = await vera('adapters', 'push', 'style', dir, '--store', spec);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^stored style version 1 \(\d+ bytes\) in /);
      r = await vera('adapters', 'push', 'style', dir, '--store', spec, '--owner', 't1');
      assert.match(r.stdout, /^stored style version 2 /);
      assert.equal((await vera('adapters', 'push', 'shared', dir, '--store', spec)).status, 0);
      r = await vera('adapters', 'list', '--store', spec, '--json');
      assert.deepEqual(
        r.stdout
          .trim()
          .split('\n')
          .map((l) => {
            const a = JSON.parse(l) as { name: string; version: number; owner: string | null };
            return [a.name, a.version, a.owner];
          }),
        [
          ['shared', 1, null],
          ['style', 2, 't1'],
        ],
      );
      assert.match(
        (await vera('adapters', 'list', '--store', spec, '--tenant', 't2')).stdout,
        /^shared\tv1\t-\t\d+ bytes\t/,
      );
      // A push without --owner keeps the owner.
      await vera('adapters', 'push', 'style', dir, '--store', spec);
      assert.match((await vera('adapters', 'list', '--store', spec)).stdout, /style\tv3\tt1\t/);
      r = await vera('adapters', 'rm', 'style', '--store', spec);
      assert.deepEqual([r.status, r.stdout], [0, 'removed style\n']);
      r = await vera('adapters', 'rm', 'style', '--store', spec);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /^vera: no adapter "style" in .*\n$/);
    });
  });
}

describe('vera adapters: checks and errors', () => {
  test('push --model refuses an adapter for another base, with the reason; nothing is stored', async () => {
    const spec = `sqlite:${join(root, 'checked.db')}`;
    const model = fixtureModel(root, 'gpt2-lm');
    let r = await vera(
      'adapters',
      'push',
      'llama',
      join(ADAPTERS, 'llama-vera-seed-only'),
      '--store',
      spec,
      '--model',
      model,
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^vera: adapter "llama" refused: .*target_modules \["q_proj","v_proj"\]/);
    r = await vera(
      'adapters',
      'push',
      'ok',
      join(ADAPTERS, 'gpt2-vera'),
      '--store',
      spec,
      '--model',
      model,
      '--threads',
      '1',
    );
    assert.equal(r.status, 0, r.stderr);
    assert.match((await vera('adapters', 'list', '--store', spec)).stdout, /^ok\tv1\t/);
    r = await vera('adapters', 'push', 'x', join(root, 'no-such-dir'), '--store', spec);
    assert.match(r.stderr, /no-such-dir\/adapter_config\.json: cannot read \(ENOENT\)/);
    assert.match((await vera('adapters', 'list')).stderr, /--store is required/);
    assert.match((await vera('adapters', 'frob', '--store', spec)).stderr, /unknown subcommand "frob"/);
    assert.match((await vera('adapters', 'rm', '--store', spec)).stderr, /takes NAME/);
    assert.match((await vera('adapters', '--help')).stdout, /vera adapters push NAME DIR --store SPEC/);
    assert.match((await vera('--help')).stdout, /adapters +Push, list and remove/);
  });

  test('push --url uploads to a running server with the key', async () => {
    const store = await openStore(`sqlite:${join(root, 'server.db')}`);
    const keys = new ApiKeys(store.keys);
    const key = (await keys.create({ tenant: 't1' })).key;
    const server: Server = createServer((req, res) => {
      void (async () => {
        try {
          const p = await keys.authenticate(req.headers.authorization);
          const reply = (await handleAdminRequest(req, new URL(req.url!, 'http://x').pathname, { store, keys }, p))!;
          res.writeHead(reply.status, { 'content-type': 'application/json' }).end(JSON.stringify(reply.json));
        } catch (e) {
          const r = errorReply(e);
          res.writeHead(r.status, { 'content-type': 'application/json' }).end(JSON.stringify(r.json));
        }
      })();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      let r = await vera('adapters', 'push', 'up', join(ADAPTERS, 'gpt2-vera'), '--url', url, '--key', key);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `stored up version 1 on ${url}\n`);
      assert.equal((await store.get('up'))!.owner, 't1');
      r = await vera('adapters', 'push', 'up', join(ADAPTERS, 'gpt2-vera'), '--url', url, '--key', 'wrong-key');
      assert.equal(r.status, 1);
      assert.match(r.stderr, /^vera: http:.*\/v1\/adapters: 401 Incorrect API key provided/);
    } finally {
      await new Promise((r) => server.close(r));
      await store.close();
    }
  });
});
