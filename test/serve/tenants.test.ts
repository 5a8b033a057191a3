// `vera serve` with keys and tenants, through the official openai client, over SQLite and over a real
// PostgreSQL (test/helpers/postgres.ts): an adapter uploaded over HTTP by tenant A is listed and used by
// A (greedy completions equal to `vera generate` with that adapter), while tenant B's key gets 404 for
// it, exactly as for an absent one; a re-upload while a request is in flight (that request finishes on
// the old version, the next one gets the new); 401 without a key; 429 with Retry-After beyond the rate
// limit; the admin's view of every adapter; and the binding rule of a server without keys.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { getPeftModel, veraConfig } from '../../src/adapters/index.js';
import { noGrad } from '../../src/autograd/graph.js';
import { loadModel } from '../../src/models/auto.js';
import { AdapterServer } from '../../src/serve/server.js';
import { type AdapterStore, openStore } from '../../src/serve/store/index.js';
import { type BaseModelValidator, baseModelValidator } from '../../src/serve/store/validate.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { runVera } from '../helpers/cli.js';
import { type PgCluster, startPostgres } from '../helpers/postgres.js';
import { fixtureModel, scratch } from '../train/helpers.js';
import { delayed } from './helpers.js';

const ADMIN = 'admin-key-for-the-tenant-tests-0123';
const PROMPT = 'w7 w8 w12';
const { dir: root, cleanup } = scratch('serve-tenants');
let gpt2: string;
let cluster: PgCluster | null = null;
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  cluster?.stop();
  cleanup();
});

/** Language-model adapters with seeded λ values (v1 and v2 of one adapter differ). */
before(() => {
  gpt2 = fixtureModel(root, 'gpt2-lm');
  for (const [name, seed] of [
    ['v1', 1],
    ['v2', 2],
  ] as const) {
    const peft = getPeftModel(loadModel(gpt2), veraConfig({ r: 8, target_modules: ['c_attn', 'c_fc'] }));
    const g = new Generator(seed);
    noGrad(() => {
      for (const [, t] of peft.trainableParameters()) {
        const v = tensor(g.uniform(t.numel, -1, 1), { shape: t.shape });
        t.backend.copy(t.view('λ'), v.view('λ'));
      }
    });
    mkdirSync(join(root, name), { recursive: true });
    peft.savePretrained(join(root, name));
  }
});

/** What `vera generate` gives with the adapter in `dir`: greedy text and token count. */
async function veraGenerate(dir: string, maxNew: number): Promise<{ text: string; tokens: number }> {
  const r = await runVera('generate', [
    '--model',
    gpt2,
    '--adapter',
    dir,
    '--prompt',
    PROMPT,
    '--max-new-tokens',
    String(maxNew),
    '--json',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { text: string; generated_ids: number[] };
  return { text: out.text, tokens: out.generated_ids.length };
}

function upload(url: string, key: string, name: string, dir: string): Promise<Response> {
  const form = new FormData();
  form.set('name', name);
  for (const f of ['adapter_config.json', 'adapter_model.safetensors'])
    form.set(f, new Blob([readFileSync(join(dir, f))]), f);
  return fetch(`${url}/v1/adapters`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form });
}

async function newKey(url: string, tenant: string): Promise<string> {
  const r = await fetch(`${url}/v1/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify({ tenant }),
  });
  assert.equal(r.status, 201, await r.clone().text());
  return ((await r.json()) as { key: string }).key;
}

const ids = async (client: OpenAI) => {
  const out: string[] = [];
  for await (const m of client.models.list()) out.push(m.id);
  return out;
};

for (const kind of ['sqlite', 'postgres'] as const) {
  describe(`vera serve with keys and tenants (${kind})`, () => {
    let server: AdapterServer;
    let store: AdapterStore;
    let validator: BaseModelValidator;
    let url: string;
    const client = (key: string) => new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });

    before(async () => {
      let spec = `sqlite:${join(root, 'store.db')}`;
      if (kind === 'postgres') {
        cluster ??= await startPostgres();
        spec = await cluster.createDatabase('tenants');
      }
      validator = baseModelValidator(gpt2);
      store = await openStore(spec, { validate: validator });
      // The engine's adapter files come 300 ms late, so a request is surely in flight during a re-upload.
      server = await AdapterServer.open({
        model: gpt2,
        store: delayed(store, 300),
        adminKey: ADMIN,
        rateLimit: { perMinute: 60, burst: 30 },
      });
      url = `http://127.0.0.1:${await server.listen(0)}`;
      cleanups.push(
        () => server.close(),
        () => store.close(),
        () => validator.close(),
      );
    });

    test('401 without a key or with a wrong one; /health and /metrics stay open', async () => {
      assert.ok(server.authRequired);
      const bare = await fetch(`${url}/v1/models`);
      assert.equal(bare.status, 401);
      assert.equal(bare.headers.get('www-authenticate'), 'Bearer');
      const body = (await bare.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'missing_api_key');
      await assert.rejects(ids(client('vera-000000000000-' + '0'.repeat(64))), OpenAI.AuthenticationError);
      await assert.rejects(
        client('nope').completions.create({ model: 'gpt2-lm', prompt: PROMPT, max_tokens: 2 }),
        (e: InstanceType<typeof OpenAI.AuthenticationError>) => e.status === 401 && e.code === 'invalid_api_key',
      );
      assert.equal((await fetch(`${url}/health`)).status, 200);
      assert.equal((await fetch(`${url}/metrics`)).status, 200);
    });

    test('tenant A uploads and uses its adapter as vera generate does; tenant B gets 404 as for an absent one', async () => {
      const [a, b] = [await newKey(url, 'tenant-a'), await newKey(url, 'tenant-b')];
      const up = await upload(url, a, 'mine', join(root, 'v1'));
      assert.equal(up.status, 201, await up.clone().text());
      assert.deepEqual(
        { ...((await up.json()) as Record<string, unknown>), bytes: 0, created: 0 },
        { id: 'mine', object: 'adapter', version: 1, owner: 'tenant-a', bytes: 0, created: 0 },
      );
      assert.deepEqual(await ids(client(a)), ['gpt2-lm', 'mine']);
      assert.deepEqual(await ids(client(b)), ['gpt2-lm']);

      const want = await veraGenerate(join(root, 'v1'), 6);
      const r = await client(a).completions.create({ model: 'mine', prompt: PROMPT, max_tokens: 6, temperature: 0 });
      assert.equal(r.choices[0]!.text, want.text);
      assert.equal(r.usage!.completion_tokens, want.tokens);

      // B: exactly the answer for an adapter that does not exist.
      const refusal = async (model: string) => {
        const e = await client(b)
          .completions.create({ model, prompt: PROMPT, max_tokens: 2, temperature: 0 })
          .then(() => assert.fail('B used another tenant’s adapter'))
          .catch((x: unknown) => x as InstanceType<typeof OpenAI.NotFoundError>);
        assert.ok(e instanceof OpenAI.NotFoundError);
        return { status: e.status, code: e.code, type: e.type, param: e.param, message: e.message.replace(model, 'X') };
      };
      assert.deepEqual(await refusal('mine'), await refusal('absent'));
      await assert.rejects(client(b).models.retrieve('mine'), OpenAI.NotFoundError);
      const get = await fetch(`${url}/v1/adapters/mine`, { headers: { authorization: `Bearer ${b}` } });
      assert.equal(get.status, 404);
      const del = await fetch(`${url}/v1/adapters/mine`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${b}` },
      });
      assert.equal(del.status, 404);
      // vera's own routes keep the tenant's view too.
      const mineB = await fetch(`${url}/v1/generate`, {
        method: 'POST',
        headers: { authorization: `Bearer ${b}` },
        body: JSON.stringify({ adapter: 'mine', prompt: PROMPT }),
      });
      assert.equal(mineB.status, 404);
      assert.doesNotMatch(await mineB.text(), /mine.*available: .*mine/);
      // B may not manage keys; the admin sees every adapter, with its owner and whether it is loaded.
      const keysB = await fetch(`${url}/v1/keys`, { headers: { authorization: `Bearer ${b}` } });
      assert.equal(keysB.status, 403);
      const all = await fetch(`${url}/v1/adapters`, { headers: { authorization: `Bearer ${ADMIN}` } });
      const list = (await all.json()) as { object: string; data: { id: string; owner: string; loaded: boolean }[] };
      assert.equal(list.object, 'list');
      assert.deepEqual(
        list.data.map((x) => [x.id, x.owner, x.loaded]),
        [['mine', 'tenant-a', true]],
      );
    });

    test('a re-upload while a request is in flight: that request finishes on the old version, the next gets the new', async () => {
      const a = await newKey(url, 'tenant-a');
      const [old, fresh] = [await veraGenerate(join(root, 'v1'), 12), await veraGenerate(join(root, 'v2'), 12)];
      assert.notEqual(old.text, fresh.text);
      // Not loaded yet (a fresh name), so the request waits for its version's files while v2 is stored.
      assert.equal((await upload(url, a, 'moving', join(root, 'v1'))).status, 201);
      const inFlight = client(a).completions.create({
        model: 'moving',
        prompt: PROMPT,
        max_tokens: 12,
        temperature: 0,
      });
      for (let i = 0; i < 100 && server.engine.stats().waiting + server.engine.stats().running === 0; i++)
        await new Promise((r) => setTimeout(r, 10));
      const re = await upload(url, a, 'moving', join(root, 'v2'));
      assert.equal(re.status, 201);
      assert.equal(((await re.json()) as { version: number }).version, 2);
      assert.equal((await inFlight).choices[0]!.text, old.text, 'the request in flight ran on version 1');
      const next = await client(a).completions.create({
        model: 'moving',
        prompt: PROMPT,
        max_tokens: 12,
        temperature: 0,
      });
      assert.equal(next.choices[0]!.text, fresh.text, 'a new request runs on version 2');
      // A bad upload is refused with the loader's reason and changes nothing.
      const form = new FormData();
      form.set('name', 'moving');
      form.set('adapter_config.json', new Blob(['{"peft_type": "VERA", "r": 8, "target_modules": ["nope"]}']));
      form.set('adapter_model.safetensors', new Blob([readFileSync(join(root, 'v2', 'adapter_model.safetensors'))]));
      const bad = await fetch(`${url}/v1/adapters`, {
        method: 'POST',
        headers: { authorization: `Bearer ${a}` },
        body: form,
      });
      assert.equal(bad.status, 422);
      assert.match(((await bad.json()) as { error: { message: string } }).error.message, /adapter "moving" refused/);
      assert.equal((await store.info('moving'))!.version, 2);
    });

    test('429 with Retry-After beyond the per-key rate limit; other keys are not affected', async () => {
      const key = await newKey(url, 'limited');
      const c = client(key);
      let limited: InstanceType<typeof OpenAI.RateLimitError> | null = null;
      for (let i = 0; i < 40 && !limited; i++)
        await ids(c).catch((e: unknown) => {
          if (!(e instanceof OpenAI.RateLimitError)) throw e;
          limited = e;
        });
      assert.ok(limited, 'the burst of 30 ran out');
      const e = limited as InstanceType<typeof OpenAI.RateLimitError>;
      assert.equal(e.status, 429);
      assert.equal(e.code, 'rate_limit_exceeded');
      assert.ok(Number(e.headers?.get('retry-after')) >= 1, 'Retry-After in whole seconds');
      assert.ok(Number(e.headers?.get('retry-after-ms')) > 0);
      assert.deepEqual(await ids(client(ADMIN)), ['gpt2-lm', 'mine', 'moving']);
    });
  });
}

describe('vera serve without keys', () => {
  test('listens on loopback only, unless told otherwise; every caller is the local admin', async () => {
    const spec = `sqlite:${join(root, 'open.db')}`;
    const server = await AdapterServer.open({ model: gpt2, store: spec, adminKey: '' });
    cleanups.push(() => server.close());
    assert.equal(server.authRequired, false);
    await assert.rejects(server.listen(0, '0.0.0.0'), /refusing to listen on 0\.0\.0\.0: .* has no API keys/);
    const url = `http://127.0.0.1:${await server.listen(0)}`;
    assert.deepEqual(await ids(new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 })), ['gpt2-lm']);
    assert.equal((await upload(url, 'unused', 'local', join(root, 'v1'))).status, 201);
    // The command says so, and refuses another host with the reason.
    const r = await runVera('serve', ['--model', gpt2, '--store', spec, '--host', '0.0.0.0', '--port', '0']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /unauthenticated|refusing to listen on 0\.0\.0\.0/);
    assert.match(r.stderr, /vera: refusing to listen on 0\.0\.0\.0: the store .* has no API keys.*--insecure-no-auth/);
  });
});
