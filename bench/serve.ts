// `vera serve` under load, on loopback only: N distinct VeRA adapters (default 1,000; VERA_BENCH_SERVE_ADAPTERS)
// of the shipped base model (random λ, so every adapter differs; seed-only files, as the demo saves), served
// by the real command (`vera serve`, a child process, so the load generator does not share its event
// loop), 64 concurrent clients each sending to a random adapter, for generation (POST /v1/completions,
// greedy, 16 tokens) and classification (POST /classify, vLLM's shape); the same load on one adapter is the
// peer. Each phase is bounded in requests and in time. Reported: errors, requests/s, p50/p99 latency, and
// the p99 of GET /health polled every 20 ms during the load (from a process of its own, so the load
// generator's event loop is not measured). Before each measured phase every adapter is touched once
// (loaded), and that first pass is reported too. Then continuous batching (the default)
// against static batching (`vera serve --batching static`: a batch runs to its end before the next
// starts) on a mixed load: 64 clients, three short requests (8 tokens) to one long one (96 tokens).

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getPeftModel, veraConfig } from '../src/adapters/index.js';
import { noGrad } from '../src/autograd/graph.js';
import { loadModel } from '../src/models/auto.js';
import { tensor } from '../src/tensor/creation.js';
import { Generator } from '../src/tensor/random.js';
import { type BenchRow, ROOT, emit, note } from './lib.js';

const ADAPTERS = Number(process.env['VERA_BENCH_SERVE_ADAPTERS'] ?? 1000);
const CLIENTS = 64;
const BASE = join(ROOT, 'assets/base-model');
const PROMPTS = ['The old house stood', 'She opened the door and', 'In the morning the', 'It was a dark'];
const TEXTS = ['What a great movie, I loved it', 'Terrible service, never again', 'It was fine', 'Not bad at all'];
const LIMITS = {
  generation: { requests: 768, seconds: 25 },
  classification: { requests: 16000, seconds: 20 },
  mixed: { requests: 768, seconds: 25 },
};
const SHORT = 8;
const LONG = 96;
/** Request i of the mixed load: every fourth is long. */
const isLong = (i: number) => i % 4 === 3;

/** N adapters under `dir`/a<i>: one PeftModel, its λ (and head) redrawn and saved N times. */
function makeAdapters(dir: string, n: number, classifier: boolean): void {
  const model = classifier
    ? loadModel(BASE, {
        architecture: 'GPT2ForSequenceClassification',
        numLabels: 2,
        config: { pad_token_id: 0 },
        newHead: { seed: 0, warn: () => {} },
      })
    : loadModel(BASE);
  const peft = getPeftModel(
    model,
    veraConfig({
      r: 256,
      target_modules: ['c_attn'],
      save_projection: false,
      fan_in_fan_out: true,
      ...(classifier ? { task_type: 'SEQ_CLS' as const } : {}),
    }),
  );
  const g = new Generator(1);
  for (let i = 0; i < n; i++) {
    noGrad(() => {
      for (const [, t] of peft.trainableParameters()) {
        const v = tensor(g.uniform(t.numel, -1, 1), { shape: t.shape });
        t.backend.copy(t.view('λ'), v.view('λ'));
        v.dispose();
      }
    });
    const out = join(dir, `a${i}`);
    mkdirSync(out, { recursive: true });
    peft.savePretrained(out);
  }
}

/** `vera serve` in a child process; resolves with its URL once it listens. */
function startServer(adapters: string, extra: string[]): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'dist/src/cli/main.js'),
      'serve',
      '--model',
      BASE,
      '--adapters',
      adapters,
      '--port',
      '0',
      '--max-loaded',
      String(ADAPTERS + 1),
      '--max-batch',
      '32',
      '--max-queued',
      '4096',
      ...extra,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      const m = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
      if (m) resolve({ url: m[1]!, child });
    });
    child.once('exit', (code) => reject(new Error(`vera serve exited (${code}): ${err}`)));
  });
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

interface Load {
  requests: number;
  errors: number;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
  healthP99: number;
  /** Latency (ms) of each request, by its index. */
  samples: { i: number; ms: number }[];
  firstError?: string;
}

/**
 * GET /health every 20 ms from a process of its own, so that what it measures is the server's
 * responsiveness, not the load generator's event loop (64 clients share this one); stop() ends it and
 * returns the latencies (ms).
 */
function healthProbe(url: string): { stop: () => Promise<number[]> } {
  const script = `
    const lat = [];
    let on = true;
    process.stdin.on('data', () => (on = false));
    (async () => {
      while (on) {
        const s = performance.now();
        await (await fetch(${JSON.stringify(url)})).text();
        lat.push(performance.now() - s);
        await new Promise((r) => setTimeout(r, 20));
      }
      process.stdout.write(JSON.stringify(lat));
    })();`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<number[]>((resolve, reject) =>
    child.once('close', (code) =>
      code === 0 ? resolve(JSON.parse(out) as number[]) : reject(new Error(`the /health probe exited with ${code}`)),
    ),
  );
  return {
    stop: () => {
      child.stdin!.end('stop\n');
      return done;
    },
  };
}

/** CLIENTS clients, each sending its next request when its last is answered, until a bound is reached. */
async function load(
  send: (adapter: string, i: number) => Promise<Response>,
  pickAdapter: () => string,
  bound: { requests: number; seconds: number },
): Promise<Load> {
  const latencies: number[] = [];
  const samples: { i: number; ms: number }[] = [];
  const health: number[] = [];
  let errors = 0;
  let started = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const deadline = t0 + bound.seconds * 1000;
  const client = async () => {
    while (started < bound.requests && performance.now() < deadline) {
      const i = started++;
      const s = performance.now();
      try {
        const r = await send(pickAdapter(), i);
        const text = await r.text();
        if (r.status !== 200) {
          errors++;
          firstError ??= `${r.status} ${text.slice(0, 200)}`;
        }
      } catch (e) {
        errors++;
        firstError ??= String(e);
      }
      latencies.push(performance.now() - s);
      samples.push({ i, ms: latencies.at(-1)! });
    }
  };
  const probe = healthProbe((send as unknown as { health: string }).health);
  await Promise.all(Array.from({ length: CLIENTS }, client));
  const seconds = (performance.now() - t0) / 1000;
  health.push(...(await probe.stop()));
  return {
    requests: latencies.length,
    errors,
    seconds,
    rps: latencies.length / seconds,
    p50: pct(latencies, 50),
    p99: pct(latencies, 99),
    healthP99: pct(health, 99),
    samples,
    ...(firstError ? { firstError } : {}),
  };
}

export async function run(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'vera-bench-serve-'));
  try {
    for (const task of ['classification', 'generation'] as const) {
      const dir = join(tmp, task);
      note(`serve: saving ${ADAPTERS} ${task} adapters`);
      let t = performance.now();
      makeAdapters(dir, ADAPTERS, task === 'classification');
      note(`serve: saved in ${((performance.now() - t) / 1000).toFixed(1)} s`);
      const { url, child } = await startServer(dir, task === 'generation' ? ['--batch-window-ms', '5'] : []);
      try {
        let i = 0;
        const send = Object.assign(
          (adapter: string) =>
            task === 'generation'
              ? fetch(`${url}/v1/completions`, {
                  method: 'POST',
                  body: JSON.stringify({
                    model: adapter,
                    prompt: PROMPTS[i++ % PROMPTS.length],
                    max_tokens: 16,
                    temperature: 0,
                  }),
                })
              : fetch(`${url}/classify`, {
                  method: 'POST',
                  body: JSON.stringify({ model: adapter, input: TEXTS[i++ % TEXTS.length] }),
                }),
          { health: `${url}/health` },
        );
        // First touch: every adapter once (each is loaded on its first request).
        let next = 0;
        t = performance.now();
        const touch = await load(send, () => `a${next++ % ADAPTERS}`, { requests: ADAPTERS, seconds: 600 });
        note(`serve: ${task}: first touch of ${ADAPTERS} adapters: ${touch.rps.toFixed(1)} req/s`);
        // A warm-up round on random adapters (JIT, allocator caches), so that neither measured phase pays it.
        const random = () => `a${Math.floor(Math.random() * ADAPTERS)}`;
        await load(send, random, { requests: LIMITS[task].requests / 4, seconds: LIMITS[task].seconds / 4 });
        const one = await load(send, () => 'a0', LIMITS[task]);
        const many = await load(send, random, LIMITS[task]);
        for (const [name, l] of [
          ['first touch', touch],
          [`${ADAPTERS} adapters`, many],
          ['one adapter', one],
        ] as const)
          note(`serve: ${task}: ${name}: ${JSON.stringify({ ...l, samples: undefined })}`);
        const what = `${task} (${task === 'generation' ? 'POST /v1/completions, 16 greedy tokens' : 'POST /classify'}), ${CLIENTS} clients`;
        const extra = {
          errors: many.errors + one.errors,
          requests_many: many.requests,
          requests_one: one.requests,
          seconds_many: many.seconds,
          seconds_one: one.seconds,
          ...(many.firstError || one.firstError ? { first_error: many.firstError ?? one.firstError } : {}),
        };
        const peer = 'vera-ts, the same load on one adapter';
        rows.push(
          emit({
            bench: 'serve',
            case: `${what}: throughput, a random one of ${ADAPTERS} adapters per request`,
            ours: many.rps,
            peer: one.rps,
            peer_name: peer,
            unit: 'req/s',
            ...extra,
          }),
          emit({
            bench: 'serve',
            case: `${what}: p50 latency, ${ADAPTERS} adapters`,
            ours: many.p50,
            peer: one.p50,
            peer_name: peer,
            unit: 'ms',
          }),
          emit({
            bench: 'serve',
            case: `${what}: p99 latency, ${ADAPTERS} adapters`,
            ours: many.p99,
            peer: one.p99,
            peer_name: peer,
            unit: 'ms',
          }),
          emit({
            bench: 'serve',
            case: `${what}: GET /health p99 under the load, ${ADAPTERS} adapters`,
            ours: many.healthP99,
            peer: one.healthP99,
            peer_name: peer,
            unit: 'ms',
          }),
          emit({
            bench: 'serve',
            case: `${what}: first request to each of ${ADAPTERS} adapters (loading included)`,
            ours: touch.rps,
            peer: one.rps,
            peer_name: peer,
            unit: 'req/s',
            errors: touch.errors,
          }),
        );
      } finally {
        child.kill('SIGTERM');
      }
    }
    rows.push(...(await continuousVsStatic(join(tmp, 'generation'))));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return rows;
}

/** Continuous against static batching on the mixed load of short and long requests (one adapter). */
async function continuousVsStatic(adapters: string): Promise<BenchRow[]> {
  const results: Record<string, Load> = {};
  for (const mode of ['continuous', 'static'] as const) {
    const { url, child } = await startServer(adapters, ['--batching', mode]);
    try {
      const send = Object.assign(
        (adapter: string, i: number) =>
          fetch(`${url}/v1/completions`, {
            method: 'POST',
            body: JSON.stringify({
              model: adapter,
              prompt: PROMPTS[i % PROMPTS.length],
              max_tokens: isLong(i) ? LONG : SHORT,
              temperature: 0,
            }),
          }),
        { health: `${url}/health` },
      );
      await load(send, () => 'a0', { requests: 128, seconds: 10 }); // warm-up
      results[mode] = await load(send, () => 'a0', LIMITS.mixed);
      note(`serve: mixed load, ${mode} batching: ${JSON.stringify({ ...results[mode], samples: undefined })}`);
    } finally {
      child.kill('SIGTERM');
    }
  }
  const [c, st] = [results['continuous']!, results['static']!];
  const short = (l: Load) => l.samples.filter((x) => !isLong(x.i)).map((x) => x.ms);
  const what = `mixed generation load (POST /v1/completions, ${CLIENTS} clients, 3 of 4 requests ${SHORT} greedy tokens, 1 of 4 ${LONG}), one adapter`;
  const peer = 'vera-ts, static batching (vera serve --batching static)';
  const errors = {
    errors_continuous: c.errors,
    errors_static: st.errors,
    requests_continuous: c.requests,
    requests_static: st.requests,
  };
  return [
    emit({
      bench: 'serve',
      case: `${what}: throughput, continuous batching`,
      ours: c.rps,
      peer: st.rps,
      peer_name: peer,
      unit: 'req/s',
      ...errors,
    }),
    emit({
      bench: 'serve',
      case: `${what}: p50 latency, continuous batching`,
      ours: c.p50,
      peer: st.p50,
      peer_name: peer,
      unit: 'ms',
    }),
    emit({
      bench: 'serve',
      case: `${what}: p99 latency, continuous batching`,
      ours: c.p99,
      peer: st.p99,
      peer_name: peer,
      unit: 'ms',
    }),
    emit({
      bench: 'serve',
      case: `${what}: p99 latency of the short requests, continuous batching`,
      ours: pct(short(c), 99),
      peer: pct(short(st), 99),
      peer_name: peer,
      unit: 'ms',
    }),
  ];
}
