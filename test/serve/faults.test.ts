// Fault tests of `vera serve` (issue 11):
//
//   - a real `vera serve` child killed with SIGKILL while several clients upload adapters (after some
//     uploads were answered, and with an upload's body still streaming), on a folder, SQLite and
//     PostgreSQL store: reopened, the store holds every adapter whole (its files validate as the server
//     loads them, and are exactly those of one upload), every answered upload is there (at its version or
//     a later one), a half-sent one is absent, and a restarted server lists and serves them;
//   - PostgreSQL stopped and started again under load, with the server in this process: requests that need
//     the store get 503 in OpenAI's shape with Retry-After meanwhile, the base and /health keep answering,
//     nothing crashes, and the same server answers everything again once the database is back;
//   - slow-drip and abandoned requests (a connection that sends nothing, headers or a body one byte at a
//     time, a request that stops half-way) are answered 408 and closed within the stated bounds
//     (headersTimeoutMs, requestTimeoutMs), and oversized (413/431) and malformed (400/415 naming the
//     problem) requests are refused, all while normal requests sent alongside keep being answered promptly.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { AdapterServer } from '../../src/serve/server.js';
import { type AdapterStore, openStore } from '../../src/serve/store/index.js';
import { type BaseModelValidator, baseModelValidator } from '../../src/serve/store/validate.js';
import type { AdapterFiles } from '../../src/serve/store/types.js';
import { BIN } from '../helpers/cli.js';
import { type PgCluster, startPostgres } from '../helpers/postgres.js';
import { fixtureFiles } from '../helpers/store-child.js';
import { fixtureModel, scratch } from '../train/helpers.js';

const { dir: root, cleanup } = scratch('serve-faults');
let gpt2: string;
let cluster: PgCluster;
let validator: BaseModelValidator;
const children = new Set<ChildProcess>();
const cleanups: (() => Promise<void> | void)[] = [];

before(async () => {
  gpt2 = fixtureModel(root, 'gpt2-lm');
  validator = baseModelValidator(gpt2);
  cluster = await startPostgres();
});
after(async () => {
  for (const c of children) c.kill('SIGKILL');
  for (const c of cleanups.reverse()) await c();
  validator?.close();
  cluster?.stop();
  cleanup();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const WEIGHTS = fixtureFiles()['adapter_model.safetensors'];
const BASE = 'gpt2-lm';

/** A multipart/form-data body of `parts` ([field, value, file name?]), and its content type. */
function multipart(parts: [string, string | Uint8Array, string?][], boundary = `vera${Date.now()}x`) {
  const chunks: Buffer[] = [];
  for (const [field, value, file] of parts) {
    const disposition = `form-data; name="${field}"${file === undefined ? '' : `; filename="${file}"`}`;
    const type = file === undefined ? '' : 'Content-Type: application/octet-stream\r\n';
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: ${disposition}\r\n${type}\r\n`));
    chunks.push(Buffer.from(value), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), type: `multipart/form-data; boundary=${boundary}` };
}

function uploadBody(name: string, files: AdapterFiles) {
  return multipart([
    ['name', name],
    ['adapter_config.json', files['adapter_config.json'], 'adapter_config.json'],
    ['adapter_model.safetensors', files['adapter_model.safetensors'], 'adapter_model.safetensors'],
  ]);
}

async function upload(url: string, name: string, files: AdapterFiles): Promise<Response> {
  const { body, type } = uploadBody(name, files);
  return fetch(`${url}/v1/adapters`, { method: 'POST', headers: { 'content-type': type }, body });
}

function completion(url: string, model: string, signal?: AbortSignal): Promise<Response> {
  return fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, prompt: 'w7 w8 w12', max_tokens: 2, temperature: 0 }),
    ...(signal ? { signal } : {}),
  });
}

/** Starts `vera serve` on `spec` as a child process; resolves with its URL once it listens. */
function startCli(spec: string): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const child = spawn(
    process.execPath,
    [BIN, 'serve', '--model', gpt2, '--store', spec, '--port', '0', '--threads', '1'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, VERA_ADMIN_KEY: '', VERA_DEBUG: '' } },
  );
  children.add(child);
  child.once('exit', () => children.delete(child));
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`vera serve did not start in 30 s: ${err}`)), 30_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, stderr: () => err });
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`vera serve exited (${code ?? signal}) before listening: ${err}`));
    });
  });
}

function kill(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', (_code, signal) => {
      assert.equal(signal, 'SIGKILL');
      resolve();
    });
    child.kill('SIGKILL');
  });
}

/** What clients sent for a name: each upload's config text and, once answered 201, its version. */
type Sent = Map<string, { config: string; version: number | null }[]>;

/**
 * `clients` clients, each uploading again and again (its own name, and one name all share) until the
 * server goes away; every upload has its own config text, so the stored files say which upload they are.
 */
function uploaders(url: string, clients: number, sent: Sent, tag: string) {
  let answered = 0;
  let waiter: { n: number; resolve: () => void } | null = null;
  const one = async (c: number) => {
    for (let i = 0; ; i++) {
      const name = i % 2 === 0 ? `own-${c}` : 'shared';
      const files = fixtureFiles({ upload: `${tag}-${c}-${i}` });
      const entry = {
        config: Buffer.from(files['adapter_config.json']).toString('utf8'),
        version: null as number | null,
      };
      const list = sent.get(name) ?? [];
      sent.set(name, [...list, entry]);
      let res: Response;
      try {
        res = await upload(url, name, files);
      } catch {
        return; // the server was killed
      }
      let text: string;
      try {
        text = await res.text();
      } catch {
        return; // killed while the answer was read
      }
      assert.equal(res.status, 201, text);
      entry.version = (JSON.parse(text) as { version: number }).version;
      answered++;
      if (waiter && answered >= waiter.n) waiter.resolve();
    }
  };
  const done = Promise.all(Array.from({ length: clients }, (_, c) => one(c)));
  return {
    done,
    /** Resolves once `n` uploads were answered. */
    answered: (n: number) =>
      Promise.race([
        new Promise<void>((resolve) => (answered >= n ? resolve() : (waiter = { n, resolve }))),
        done.then(() => {
          throw new Error(`the uploaders stopped after ${answered} answers, before ${n}`);
        }),
      ]),
  };
}

/**
 * The store after a crash: every adapter listed is whole (its files validate as the server loads them)
 * and exactly one upload's files; every answered upload is there (at its version, or a later one);
 * names never answered for are absent or one of their uploads. Returns name → version.
 */
async function checkStore(spec: string, sent: Sent, absent: string[] = []): Promise<Map<string, number>> {
  const store = await openStore(spec);
  try {
    const listed = await store.list();
    const out = new Map(listed.map((a) => [a.name, a.version]));
    for (const name of absent) assert.equal(out.has(name), false, `${name} was never answered, yet is stored`);
    for (const [name, uploads] of sent) {
      const acked = uploads.filter((u) => u.version !== null).map((u) => u.version!);
      if (acked.length > 0) assert.ok(out.has(name), `${name}: answered 201 (v${Math.max(...acked)}), but gone`);
    }
    for (const info of listed) {
      const got = (await store.get(info.name))!;
      assert.ok(got, `${info.name} is listed but cannot be read`);
      assert.equal(got.version, info.version);
      // Whole: the files load onto the base as the server loads them, byte for byte one upload's.
      await validator(info.name, got.files);
      assert.deepEqual(Buffer.from(got.files['adapter_model.safetensors']), Buffer.from(WEIGHTS), info.name);
      const config = Buffer.from(got.files['adapter_config.json']).toString('utf8');
      const uploads = sent.get(info.name) ?? [];
      const which = uploads.find((u) => u.config === config);
      assert.ok(which, `${info.name} v${info.version}: files of no upload (${config.slice(0, 80)}…)`);
      if (which.version !== null) assert.equal(info.version, which.version, `${info.name}: the answered version`);
      const acked = uploads.filter((u) => u.version !== null).map((u) => u.version!);
      if (acked.length > 0) assert.ok(info.version >= Math.max(...acked), `${info.name}: an answered upload lost`);
      assert.equal(got.bytes, got.files['adapter_config.json'].byteLength + WEIGHTS.byteLength);
    }
    return out;
  } finally {
    await store.close();
  }
}

/** A restarted server lists exactly the store's adapters at their versions and serves each of them. */
async function checkServes(url: string, want: Map<string, number>): Promise<void> {
  const list = (await (await fetch(`${url}/v1/adapters`)).json()) as { data: { id: string; version: number }[] };
  assert.deepEqual(new Map(list.data.map((a) => [a.id, a.version])), want);
  for (const name of want.keys()) {
    const r = await completion(url, name);
    assert.equal(r.status, 200, await r.clone().text());
    const body = (await r.json()) as {
      model: string;
      choices: { text: string }[];
      usage: { completion_tokens: number };
    };
    assert.equal(body.usage.completion_tokens, 2);
  }
}

let dbs = 0;
async function specOf(kind: 'folder' | 'sqlite' | 'postgres'): Promise<string> {
  const n = ++dbs;
  if (kind === 'folder') return join(root, `folder-${n}`);
  if (kind === 'sqlite') return `sqlite:${join(root, `store-${n}.db`)}`;
  return cluster.createDatabase(`faults_${n}`);
}

for (const kind of ['folder', 'sqlite', 'postgres'] as const) {
  describe(`vera serve killed with SIGKILL during uploads (${kind} store)`, () => {
    test('every adapter is whole or absent, answered uploads survive, a restarted server serves them', async () => {
      const spec = await specOf(kind);
      const sent: Sent = new Map();

      // 1. Killed with four clients uploading, after 12 uploads were answered (others are in flight).
      let srv = await startCli(spec);
      const first = uploaders(srv.url, 4, sent, 'a');
      await first.answered(12);
      await kill(srv.child);
      await first.done;
      assert.ok(
        [...sent.values()].flat().some((u) => u.version === null),
        'some upload was in flight when the server was killed',
      );
      let want = await checkStore(spec, sent);
      assert.ok(want.size >= 2, `at least two names stored: ${[...want.keys()]}`);

      // 2. Restarted on that store: it serves them. Then killed with an upload's body half sent (a new
      //    name, so it must be absent after) while two other clients upload.
      srv = await startCli(spec);
      await checkServes(srv.url, want);
      const second = uploaders(srv.url, 2, sent, 'b');
      const { body, type } = uploadBody('half-sent', fixtureFiles({ upload: 'half' }));
      const half = request(`${srv.url}/v1/adapters`, {
        method: 'POST',
        headers: { 'content-type': type, 'content-length': body.length },
      });
      const halfDone = new Promise<string>((resolve) => {
        half.on('response', (r) => resolve(`answered ${r.statusCode}`));
        half.on('error', (e) => resolve(e.message));
      });
      half.write(body.subarray(0, body.length >> 1));
      await second.answered(4);
      await sleep(50);
      await kill(srv.child);
      await second.done;
      assert.doesNotMatch(await halfDone, /answered/, 'the half-sent upload was never answered');
      want = await checkStore(spec, sent, ['half-sent']);
      if (kind === 'folder') {
        // Nothing but adapters and the store's own folder at the top: no temporary or torn entries.
        const top = readdirSync(spec).sort();
        assert.deepEqual(top, ['.vera', ...want.keys()].sort());
      }

      // 3. Restarted again: it serves the store as it is, and takes uploads.
      srv = await startCli(spec);
      await checkServes(srv.url, want);
      const later = await upload(srv.url, 'half-sent', fixtureFiles({ upload: 'later' }));
      assert.equal(later.status, 201, await later.clone().text());
      await kill(srv.child);
    });
  });
}

describe('PostgreSQL restarted under load', () => {
  test('requests needing the store get 503 with Retry-After meanwhile; the same server recovers by itself', async () => {
    const spec = await cluster.createDatabase('faults_restart');
    const logs: string[] = [];
    const server = await AdapterServer.open({ model: gpt2, store: spec, adminKey: '', log: (l) => logs.push(l) });
    cleanups.push(() => server.close());
    const url = `http://127.0.0.1:${await server.listen(0)}`;
    for (const name of ['warm', 'cold-1', 'cold-2', 'cold-3', 'cold-4'])
      assert.equal((await upload(url, name, fixtureFiles({ name }))).status, 201);
    assert.equal((await completion(url, 'warm')).status, 200); // loaded now

    type Rec = { kind: string; t0: number; t1: number; status: number; body: string; retry: string | null };
    const recs: Rec[] = [];
    let cold = 0;
    const kinds: Record<string, (w: number) => Promise<Response>> = {
      list: () => fetch(`${url}/v1/adapters`),
      models: () => fetch(`${url}/v1/models`),
      upload: (w) => upload(url, `up-${w}`, fixtureFiles({ w, t: Date.now() })),
      // Not loaded yet: the first requests of each load it from the store (while it is up).
      cold: () => completion(url, `cold-${(cold++ % 4) + 1}`),
      warm: () => completion(url, 'warm'),
      base: () => completion(url, BASE),
      health: () => fetch(`${url}/health`),
    };
    let running = true;
    let onlyBase = false;
    const worker = async (w: number) => {
      const names = Object.keys(kinds);
      for (let i = w; running; i++) {
        const kind = onlyBase ? 'base' : names[i % names.length]!;
        const t0 = Date.now();
        const res = await kinds[kind]!(w);
        recs.push({
          kind,
          t0,
          t1: Date.now(),
          status: res.status,
          body: await res.text(),
          retry: res.headers.get('retry-after'),
        });
      }
    };
    const load = Promise.all([0, 1, 2, 3].map(worker));
    await sleep(800);
    const stopping = Date.now();
    cluster.stopServer();
    const down = Date.now();
    await sleep(1200);
    // Then only the base, for longer than the 2 s between the server's checks for new keys (it has none),
    // so that a check that cannot reach the store falls on a request that needs nothing of it.
    onlyBase = true;
    await sleep(2100);
    onlyBase = false;
    const upping = Date.now();
    cluster.startServer();
    const up = Date.now();
    await sleep(3000);
    running = false;
    await load;

    const bad = recs.filter((r) => ![200, 201, 503].includes(r.status));
    assert.deepEqual(bad, [], 'only 200/201 or 503, never a 500 or a reset');
    const prior = recs.filter((r) => r.t1 < stopping);
    assert.ok(prior.length > 10);
    assert.deepEqual(
      prior.filter((r) => r.status >= 300),
      [],
      'all answered before the database stopped',
    );
    // Wholly within the outage.
    const during = recs.filter((r) => r.t0 >= down && r.t1 <= upping);
    for (const kind of ['list', 'models', 'upload', 'cold']) {
      const rs = during.filter((r) => r.kind === kind);
      assert.ok(rs.length > 0, `some ${kind} requests during the outage`);
      for (const r of rs) {
        assert.equal(r.status, 503, `${kind} during the outage: ${r.status} ${r.body}`);
        assert.equal(r.retry, '1', `${kind}: Retry-After`);
        const e = (JSON.parse(r.body) as { error: { message: string; type: string; param: unknown; code: unknown } })
          .error;
        assert.equal(e.type, 'server_error');
        assert.match(e.message, /database unavailable/);
        assert.ok('param' in e && 'code' in e, 'OpenAI’s error object');
      }
    }
    // What needs nothing of the store keeps answering; a loaded adapter may (its version is looked up).
    for (const r of during.filter((x) => x.kind === 'base' || x.kind === 'health'))
      assert.equal(r.status, 200, `${r.kind} during the outage: ${r.body}`);
    assert.ok(during.some((r) => r.kind === 'base'));
    // Back by itself: every kind succeeds again, and everything sent a second after the restart does.
    for (const kind of Object.keys(kinds))
      assert.ok(
        recs.some((r) => r.kind === kind && r.t0 >= up && r.status < 300),
        `${kind} succeeds again after the restart`,
      );
    const settled = recs.filter((r) => r.t0 >= up + 1000);
    assert.ok(settled.length > 10);
    assert.deepEqual(
      settled.filter((r) => r.status >= 300),
      [],
      'everything answered once the database is back',
    );
    // Uploads answered 201 are stored (one whose commit's answer was lost may have been stored too).
    const versions = new Map((await server.store.list()).map((a) => [a.name, a.version]));
    for (const w of [0, 1, 2, 3]) {
      const acked = recs.filter(
        (r) => r.kind === 'upload' && r.status === 201 && (JSON.parse(r.body) as { id: string }).id === `up-${w}`,
      );
      if (acked.length > 0) assert.ok(versions.get(`up-${w}`)! >= acked.length);
    }
    assert.deepEqual(
      logs.filter((l) => /TypeError|ReferenceError/.test(l)),
      [],
    );
  });
});

/** A raw connection: what it received, and when it closed (ms after it opened). */
function raw(port: number, send: (write: (s: string | Buffer) => boolean) => void) {
  const t0 = Date.now();
  const socket = connect(port, '127.0.0.1');
  let got = '';
  socket.on('data', (d) => (got += d.toString()));
  socket.on('error', () => undefined);
  const closed = new Promise<{ got: string; ms: number }>((resolve) =>
    socket.on('close', () => resolve({ got, ms: Date.now() - t0 })),
  );
  socket.on('connect', () => send((s) => !socket.destroyed && socket.write(s)));
  return { socket, closed };
}

/** Drips `text` one byte every `ms` until the socket closes. */
function drip(write: (s: string | Buffer) => boolean, text: string, ms: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (i >= text.length || !write(text[i++]!)) clearInterval(timer);
  }, ms);
}

/** Normal requests sent one after another on two loops, with their latencies. */
function traffic(url: string) {
  let running = true;
  const lat: number[] = [];
  const failures: string[] = [];
  const loop = async (n: number) => {
    for (let i = n; running; i++) {
      const t0 = performance.now();
      const res = await [() => fetch(`${url}/health`), () => fetch(`${url}/v1/models`), () => completion(url, BASE)][
        i % 3
      ]!();
      const text = await res.text();
      lat.push(performance.now() - t0);
      if (res.status !== 200) failures.push(`${res.status} ${text}`);
    }
  };
  const loops = Promise.all([loop(0), loop(1)]);
  return {
    async end() {
      running = false;
      await loops;
      const sorted = [...lat].sort((a, b) => a - b);
      return { n: lat.length, failures, max: sorted.at(-1)!, median: sorted[sorted.length >> 1]! };
    },
  };
}

describe('slow, abandoned, oversized and malformed requests', () => {
  const HEADERS_MS = 600;
  const REQUEST_MS = 1500;
  let server: AdapterServer;
  let url: string;
  let port: number;
  let store: AdapterStore;
  const logs: string[] = [];

  before(async () => {
    store = await openStore(`sqlite:${join(root, 'slow.db')}`, { validate: validator });
    server = await AdapterServer.open({
      model: gpt2,
      store,
      adminKey: '',
      headersTimeoutMs: HEADERS_MS,
      requestTimeoutMs: REQUEST_MS,
      keepAliveTimeoutMs: 500,
      uploadLimits: { maxWeightsBytes: 64 << 10 },
      log: (l) => logs.push(l),
    });
    port = await server.listen(0);
    url = `http://127.0.0.1:${port}`;
    cleanups.push(
      () => server.close(),
      () => store.close(),
    );
  });

  const timeoutAnswer = (got: string, what: RegExp) => {
    assert.match(got, /^HTTP\/1\.1 408 Request Timeout\r\n/);
    assert.match(got, /\r\nConnection: close\r\n/i);
    const body = JSON.parse(got.slice(got.indexOf('\r\n\r\n') + 4)) as { error: unknown };
    const message = typeof body.error === 'string' ? body.error : (body.error as { message: string }).message;
    assert.match(message, what);
  };

  test('drips and abandoned requests get 408 and are closed within their bounds; others are answered promptly', async () => {
    const normal = traffic(url);
    const body = JSON.stringify({ model: BASE, prompt: 'w7 w8', max_tokens: 2 });
    const post = (path: string, length: number, type = 'application/json') =>
      `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nContent-Length: ${length}\r\n\r\n`;
    const up = uploadBody('dripped', fixtureFiles({ upload: 'dripped' }));
    const cases = {
      // Connects and sends nothing, many times over.
      silent: Array.from({ length: 20 }, () => raw(port, () => undefined)),
      headerDrip: [raw(port, (w) => drip(w, `GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(100)}`, 100))],
      headerHalf: [raw(port, (w) => w('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-'))],
      bodyDrip: [raw(port, (w) => (w(post('/v1/completions', body.length)), drip(w, body, 150)))],
      bodyHalf: [raw(port, (w) => w(post('/v1/generate', 100) + '{"prompt": "w7'))],
      uploadDrip: [
        raw(port, (w) => {
          w(post('/v1/adapters', up.body.length, up.type));
          w(up.body.subarray(0, 200));
          drip(w, up.body.subarray(200, 400).toString('latin1'), 100);
        }),
      ],
    };
    const ends = Object.fromEntries(
      await Promise.all(
        Object.entries(cases).map(async ([k, v]) => [k, await Promise.all(v.map((c) => c.closed))] as const),
      ),
    );
    const stats = await normal.end();
    const slack = 1000; // Node checks the bounds every headersTimeout / 5 ms; a busy 2-vCPU machine adds more
    for (const r of [...ends['silent']!, ...ends['headerDrip']!, ...ends['headerHalf']!]) {
      timeoutAnswer(r.got, /headers were not received within 600 ms \(--headers-timeout-ms\)/);
      assert.ok(r.ms >= HEADERS_MS - 50 && r.ms <= HEADERS_MS + slack, `closed after ${r.ms} ms`);
    }
    for (const r of [...ends['bodyDrip']!, ...ends['bodyHalf']!, ...ends['uploadDrip']!]) {
      timeoutAnswer(r.got, /not received whole within 1500 ms \(--request-timeout-ms\)/);
      assert.ok(r.ms >= REQUEST_MS - 50 && r.ms <= REQUEST_MS + slack, `closed after ${r.ms} ms`);
    }
    // The route's own error shape once the route is known: OpenAI's on /v1/completions, vera's on /v1/generate.
    assert.match(ends['bodyDrip']![0]!.got, /"error":\{"message"/);
    assert.match(ends['bodyHalf']![0]!.got, /"error":"the request was not received whole/);
    // Normal requests alongside: all answered, none held up by the drips.
    assert.deepEqual(stats.failures, []);
    assert.ok(stats.n >= 20, `${stats.n} normal requests in ${REQUEST_MS} ms`);
    assert.ok(
      stats.max < 750,
      `normal requests took up to ${stats.max.toFixed(0)} ms (median ${stats.median.toFixed(0)})`,
    );
    assert.equal(await store.info('dripped'), null, 'the dripped upload stored nothing');
    // Counted as 408 on their routes, not logged as server faults.
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /route="\/v1\/completions"[^\n]*status="408"|status="408"[^\n]*route="\/v1\/completions"/);
    assert.deepEqual(logs, []);
    // The server is as it was.
    assert.equal((await completion(url, BASE)).status, 200);
  });

  test('oversized and malformed requests are refused naming the problem, never stalling others', async () => {
    const normal = traffic(url);
    const json = (body: string) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const form = (body: Buffer | string, type: string) => ({ method: 'POST', headers: { 'content-type': type }, body });
    const files = fixtureFiles({ upload: 'malformed' });
    const good = uploadBody('malformed', files);
    const truncated = good.body.subarray(0, good.body.length - 300);
    const big = uploadBody('malformed', { ...files, 'adapter_model.safetensors': Buffer.alloc(100 << 10, 1) });
    const noWeights = multipart([
      ['name', 'malformed'],
      ['adapter_config.json', files['adapter_config.json'], 'adapter_config.json'],
    ]);
    const cases: [string, string, RequestInit, number, RegExp][] = [
      ['413 JSON', '/v1/completions', json(`{"prompt": "${'x'.repeat(1 << 20)}"}`), 413, /over 1048576 bytes/],
      ['bad JSON', '/v1/completions', json('{"model": "gpt2-lm", "prompt": '), 400, /the body is not JSON/],
      ['not an object', '/v1/chat/completions', json('[1, 2]'), 400, /must be a JSON object/],
      ['413 weights', '/v1/adapters', form(big.body, big.type), 413, /adapter_model.safetensors is over 65536 bytes/],
      [
        'no boundary',
        '/v1/adapters',
        form(good.body, 'multipart/form-data'),
        400,
        /bad multipart request: .*boundary/i,
      ],
      [
        'truncated form',
        '/v1/adapters',
        form(truncated, good.type),
        400,
        /bad multipart request: Unexpected end of form/,
      ],
      ['no weights', '/v1/adapters', form(noWeights.body, noWeights.type), 400, /no adapter_model.safetensors/],
      ['not multipart', '/v1/adapters', json('{}'), 415, /multipart\/form-data/],
      ['garbage form', '/v1/adapters', form('no parts at all', good.type), 400, /bad multipart request|no "name"/],
    ];
    const replies = cases.flatMap(([what, path, init, status, message]) =>
      [0, 1, 2].map(async () => {
        const t0 = performance.now();
        const res = await fetch(`${url}${path}`, init);
        const body = (await res.json()) as { error: { message: string; type: string } };
        assert.equal(res.status, status, `${what}: ${JSON.stringify(body)}`);
        assert.match(body.error.message, message, what);
        assert.equal(body.error.type, 'invalid_request_error', what);
        return performance.now() - t0;
      }),
    );
    // At the connection: a Content-Length over the upload bound is refused before the body is read; headers
    // beyond Node's 16 KiB are a 431; bytes that are not HTTP a 400. Each then closed.
    const early = raw(port, (w) =>
      w(`POST /v1/adapters HTTP/1.1\r\nHost: x\r\nContent-Type: ${good.type}\r\nContent-Length: 10000000000\r\n\r\n--`),
    );
    const huge = raw(port, (w) => w(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20 << 10)}\r\n\r\n`));
    const garbage = raw(port, (w) => w('\x16\x03\x01 this is not HTTP\r\n\r\n'));
    const t0 = Date.now();
    let earlyAt = 0;
    early.socket.on('data', () => (earlyAt ||= Date.now() - t0));
    const lat = await Promise.all(replies);
    const [e, h, g] = await Promise.all([early.closed, huge.closed, garbage.closed]);
    const stats = await normal.end();
    assert.match(e.got, /^HTTP\/1\.1 413 /);
    assert.match(e.got, /the upload is 10000000000 bytes, over the \d+ allowed/);
    assert.ok(earlyAt < 500, `the 413 came after ${earlyAt} ms, before any body`);
    assert.match(h.got, /^HTTP\/1\.1 431 /);
    assert.match(g.got, /^HTTP\/1\.1 400 Bad Request\r\n[^]*bad HTTP request/);
    assert.ok(Math.max(...lat) < 3000, `refusals took up to ${Math.max(...lat).toFixed(0)} ms`);
    assert.deepEqual(stats.failures, []);
    assert.ok(
      stats.max < 750,
      `normal requests took up to ${stats.max.toFixed(0)} ms (median ${stats.median.toFixed(0)})`,
    );
    assert.equal(await store.info('malformed'), null, 'no refused upload stored anything');
    assert.deepEqual(logs, []);
  });
});
