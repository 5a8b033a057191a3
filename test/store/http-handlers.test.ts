// The admin routes over a real node:http server, mounted the way `vera serve` mounts them (authenticate,
// rate-limit, handleAdminRequest, errorReply): uploads validated against the base model exactly as
// serving loads adapters (good ones stored as new versions; bad ones 422 with the reason and nothing
// stored), tenant isolation (another tenant's adapter is a 404), the key routes, and 429.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { handleAdminRequest } from '../../src/serve/auth/admin-routes.js';
import { ApiError, errorReply } from '../../src/serve/auth/errors.js';
import { ApiKeys } from '../../src/serve/auth/keys.js';
import { RateLimiter } from '../../src/serve/auth/rate-limit.js';
import { type AdapterStore, openStore } from '../../src/serve/store/index.js';
import { type BaseModelValidator, baseModelValidator } from '../../src/serve/store/validate.js';
import { fixtureModel, scratch } from '../train/helpers.js';

const ADAPTERS = fileURLToPath(new URL('../../../test/parity/fixtures/adapters/', import.meta.url));
const adapterFiles = (dir: string) => ({
  'adapter_config.json': readFileSync(`${ADAPTERS}${dir}/adapter_config.json`),
  'adapter_model.safetensors': readFileSync(`${ADAPTERS}${dir}/adapter_model.safetensors`),
});

const { dir: root, cleanup } = scratch('admin-http');
let server: Server;
let store: AdapterStore;
let validator: BaseModelValidator;
let keys: ApiKeys;
let base: string;
const key: Record<string, string> = {};

before(async () => {
  validator = baseModelValidator(fixtureModel(root, 'gpt2-lm'));
  store = await openStore(`sqlite:${root}/store.db`, { validate: validator });
  keys = new ApiKeys(store.keys);
  await keys.seedAdmin('admin-key-for-the-tests-0123');
  key['admin'] = 'admin-key-for-the-tests-0123';
  key['t1'] = (await keys.create({ tenant: 't1' })).key;
  key['t2'] = (await keys.create({ tenant: 't2' })).key;
  const limiter = new RateLimiter({ perMinute: 600, burst: 1000 });
  const tight = new RateLimiter({ perMinute: 60, burst: 2 });
  server = createServer((req, res) => {
    void (async () => {
      try {
        const path = new URL(req.url ?? '/', 'http://x').pathname;
        const p = await keys.authenticate(req.headers.authorization);
        (p.tenant === 'limited' ? tight : limiter).check(p.keyId!);
        const reply = await handleAdminRequest(req, path, { store, keys, limits: { maxWeightsBytes: 64 << 10 } }, p);
        if (!reply) throw new ApiError(404, `no route ${path}`);
        res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
        res.end(JSON.stringify(reply.json));
      } catch (e) {
        const r = errorReply(e);
        res.writeHead(r.status, { 'content-type': 'application/json', ...r.headers });
        res.end(JSON.stringify(r.json));
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
after(async () => {
  await new Promise((r) => server.close(r));
  await store.close();
  validator.close();
  cleanup();
});

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
async function call(who: string | null, method: string, path: string, body?: FormData | Json | string) {
  const headers: Record<string, string> = who ? { authorization: `Bearer ${key[who] ?? who}` } : {};
  const init: RequestInit = { method, headers };
  if (body instanceof FormData || typeof body === 'string') init.body = body;
  else if (body) init.body = JSON.stringify(body);
  const res = await fetch(`${base}${path}`, init);
  return { status: res.status, headers: res.headers, body: (await res.json()) as Json };
}

function form(name: string | null, files: Partial<Record<string, Uint8Array>>, extra: Record<string, string> = {}) {
  const f = new FormData();
  if (name !== null) f.append('name', name);
  for (const [k, v] of Object.entries(extra)) f.append(k, v);
  for (const [file, bytes] of Object.entries(files)) f.append(file, new Blob([bytes!]), file);
  return f;
}

describe('admin routes over HTTP', () => {
  test('a tenant uploads a good adapter; a re-upload is a new version; other tenants get 404', async () => {
    const up = await call('t1', 'POST', '/v1/adapters', form('style', adapterFiles('gpt2-vera')));
    assert.equal(up.status, 201, JSON.stringify(up.body));
    assert.deepEqual([up.body['id'], up.body['version'], up.body['owner']], ['style', 1, 't1']);
    assert.equal(up.headers.get('location'), '/v1/adapters/style');
    const again = await call('t1', 'POST', '/v1/adapters', form('style', adapterFiles('gpt2-vera')));
    assert.equal(again.body['version'], 2);
    const got = await call('t1', 'GET', '/v1/adapters/style');
    assert.equal(got.status, 200);
    assert.equal(got.body['config']['peft_type'], 'VERA');
    assert.equal((await call('t1', 'GET', '/v1/adapters/style?version=1')).body['version'], 1);
    // Another tenant: absent, in every route.
    const hidden = await call('t2', 'GET', '/v1/adapters/style');
    assert.equal(hidden.status, 404);
    assert.deepEqual(hidden.body['error'], {
      message: 'The model `style` does not exist.',
      type: 'not_found_error',
      param: 'model',
      code: 'model_not_found',
    });
    // The same answer as for a name that does not exist at all.
    const missing = await call('t2', 'GET', '/v1/adapters/stylo');
    assert.deepEqual(
      [missing.status, missing.body['error']['message'].replace('stylo', 'style')],
      [404, hidden.body['error']['message']],
    );
    assert.deepEqual((await call('t2', 'GET', '/v1/adapters')).body['data'], []);
    assert.equal((await call('t2', 'DELETE', '/v1/adapters/style')).status, 404);
    assert.equal((await call('t2', 'POST', '/v1/adapters', form('style', adapterFiles('gpt2-vera')))).status, 409);
    assert.equal((await call('t1', 'GET', '/v1/adapters/style')).body['version'], 2);
    assert.equal(
      (await call('t1', 'POST', '/v1/adapters', form('x', adapterFiles('gpt2-vera'), { owner: 't2' }))).status,
      403,
    );
    // The owner removes it.
    assert.deepEqual((await call('t1', 'DELETE', '/v1/adapters/style')).body, {
      id: 'style',
      object: 'adapter',
      deleted: true,
    });
    assert.equal((await call('t1', 'GET', '/v1/adapters/style')).status, 404);
  });

  test("bad adapters get 422 with the loader's reason and nothing is stored", async () => {
    const before = await store.versions();
    const cases: [string, FormData, number, RegExp][] = [
      // An adapter for another base: refused by loading it onto this one, as serving would.
      [
        'llama adapter',
        form('bad1', adapterFiles('llama-vera-seed-only')),
        422,
        /adapter "bad1" refused: .*target_modules \["q_proj","v_proj"\]/,
      ],
      [
        'torn weights',
        form('bad2', {
          ...adapterFiles('gpt2-vera'),
          'adapter_model.safetensors': adapterFiles('gpt2-vera')['adapter_model.safetensors'].subarray(0, 200),
        }),
        422,
        /adapter "bad2" refused: .*adapter_model\.safetensors/,
      ],
      [
        'wrong r',
        form('bad3', {
          ...adapterFiles('gpt2-vera'),
          'adapter_config.json': Buffer.from(
            JSON.stringify({ ...JSON.parse(adapterFiles('gpt2-vera')['adapter_config.json'].toString()), r: 4 }),
          ),
        }),
        422,
        /adapter "bad3" refused: \[adapters\] adapter_model\.safetensors: "base_model\.vera_A" has shape \(8, 128\) but the model needs \(4, 128\)/,
      ],
      ['no name', form(null, adapterFiles('gpt2-vera')), 400, /no "name" field/],
      ['bad name', form('../up', adapterFiles('gpt2-vera')), 400, /invalid adapter name/],
      [
        'one file',
        form('bad4', { 'adapter_config.json': adapterFiles('gpt2-vera')['adapter_config.json'] }),
        400,
        /no adapter_model\.safetensors/,
      ],
      [
        'other file',
        form('bad5', { ...adapterFiles('gpt2-vera'), 'model.bin': Buffer.from('x') }),
        400,
        /unexpected file "model\.bin"/,
      ],
      [
        'too large',
        form('bad6', { ...adapterFiles('gpt2-vera'), 'adapter_model.safetensors': Buffer.alloc(70 << 10) }),
        413,
        /adapter_model\.safetensors is over 65536 bytes/,
      ],
    ];
    for (const [what, body, status, message] of cases) {
      const r = await call('t1', 'POST', '/v1/adapters', body);
      assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
      assert.match(r.body['error']['message'], message, what);
      assert.equal(r.body['error']['type'], 'invalid_request_error', what);
    }
    const json = await call('t1', 'POST', '/v1/adapters', '{"name": "x"}');
    assert.equal(json.status, 415);
    assert.deepEqual(await store.versions(), before, 'nothing was stored');
    // The validator left the base as it was: a good adapter still loads after the refusals.
    assert.equal((await call('t1', 'POST', '/v1/adapters', form('good', adapterFiles('gpt2-vera')))).status, 201);
    assert.equal((await call('t1', 'POST', '/v1/adapters', form('cls', adapterFiles('gpt2-seqcls-lora')))).status, 201);
  });

  test("admins: owner-less adapters, any tenant's adapter; tenants cannot remove shared ones", async () => {
    const shared = await call('admin', 'POST', '/v1/adapters', form('shared', adapterFiles('gpt2-vera')));
    assert.deepEqual([shared.status, shared.body['owner']], [201, null]);
    const given = await call(
      'admin',
      'POST',
      '/v1/adapters',
      form('given', adapterFiles('gpt2-vera'), { owner: 't2' }),
    );
    assert.equal(given.body['owner'], 't2');
    assert.ok((await call('t1', 'GET', '/v1/adapters')).body['data'].some((a: Json) => a['id'] === 'shared'));
    assert.equal((await call('t1', 'GET', '/v1/adapters/shared')).status, 200);
    const no = await call('t1', 'DELETE', '/v1/adapters/shared');
    assert.equal(no.status, 403);
    assert.equal(no.body['error']['type'], 'permission_error');
    // An admin re-upload keeps the owner unless it names one.
    assert.equal(
      (await call('admin', 'POST', '/v1/adapters', form('given', adapterFiles('gpt2-vera')))).body['owner'],
      't2',
    );
    assert.equal((await call('admin', 'DELETE', '/v1/adapters/given')).status, 200);
    assert.equal((await call('admin', 'GET', '/v1/adapters')).body['object'], 'list');
  });

  test('keys: admins create, list and revoke; tenants may not; a revoked key gets 401', async () => {
    const made = await call('admin', 'POST', '/v1/keys', { tenant: 't3' });
    assert.equal(made.status, 201);
    assert.match(made.body['key'], /^vera-[0-9a-f]{12}-[0-9a-f]{64}$/);
    assert.equal(made.body['role'], 'tenant');
    assert.equal((await call(made.body['key'], 'GET', '/v1/adapters')).status, 200);
    const list = await call('admin', 'GET', '/v1/keys');
    assert.ok(list.body['data'].some((k: Json) => k['id'] === made.body['id'] && k['key'] === undefined));
    assert.ok(!JSON.stringify(list.body).includes(made.body['key']));
    assert.equal((await call('t1', 'POST', '/v1/keys', { tenant: 't1', role: 'admin' })).status, 403);
    assert.equal((await call('t1', 'GET', '/v1/keys')).status, 403);
    assert.equal((await call('admin', 'POST', '/v1/keys', { tenant: 'a b' })).status, 400);
    assert.equal((await call('admin', 'POST', '/v1/keys', { tenant: 't', role: 'root' })).status, 400);
    assert.equal((await call('admin', 'DELETE', `/v1/keys/${made.body['id']}`)).status, 200);
    const gone = await call(made.body['key'], 'GET', '/v1/adapters');
    assert.equal(gone.status, 401);
    assert.equal(gone.body['error']['code'], 'revoked_api_key');
    assert.equal((await call('admin', 'DELETE', '/v1/keys/000000000000')).status, 404);
    assert.equal((await call(null, 'GET', '/v1/adapters')).status, 401);
    assert.equal((await call('admin', 'PUT', '/v1/keys')).status, 405);
  });

  test('rate limit: 429 with Retry-After once the burst is spent', async () => {
    const limited = (await keys.create({ tenant: 'limited' })).key;
    for (let i = 0; i < 2; i++) assert.equal((await call(limited, 'GET', '/v1/adapters')).status, 200);
    const r = await call(limited, 'GET', '/v1/adapters');
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '1');
    assert.ok(Number(r.headers.get('retry-after-ms')) > 0);
    assert.equal(r.body['error']['code'], 'rate_limit_exceeded');
  });
});
