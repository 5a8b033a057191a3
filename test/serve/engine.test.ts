// The serving engine (src/serve/engine): in-process (LocalEngine) and in a worker thread (WorkerEngine),
// adapters from an AdapterSource by name@version. Generation on mixed adapters equals generate with each
// adapter alone; a re-upload (new version) is served fresh while a row on the old one finishes on it;
// LRU beyond maxLoaded; classification and embeddings batched, equal to one request alone; the worker
// gives the local engine's answers, keeps the main event loop free, cancels, and reports bad adapter
// files as a rejection naming the file, then goes on serving.

import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadTrained } from '../../src/adapters/load.js';
import { noGrad } from '../../src/autograd/graph.js';
import { WorkerEngine } from '../../src/serve/engine/client.js';
import { LocalEngine } from '../../src/serve/engine/local.js';
import { type AdapterRef, type AdapterSource, type Engine, EngineError } from '../../src/serve/engine/types.js';
import { tensor } from '../../src/tensor/creation.js';
import { scope } from '../../src/tensor/scope.js';
import { caseDir } from '../models/fixtures.js';
import { scratch } from '../train/helpers.js';
import { adapterFiles, makeAdapters, solo } from '../generate/continuous-fixtures.js';

const ADAPTER_FIXTURES = fileURLToPath(new URL('../../../test/parity/fixtures/adapters/', import.meta.url));
const { dir: root, cleanup } = scratch('engine');
const engines: Engine[] = [];
after(async () => {
  for (const e of engines) await e.close();
  cleanup();
});

const BASE = { name: '__base__', version: 0 };
let gpt2: Map<string, string>;
let llama: Map<string, string>;
before(() => {
  gpt2 = makeAdapters(root, 'gpt2-lm', [1, 2]);
  llama = makeAdapters(root, 'llama-lm', [3, 4]);
});

/** A store in memory: name → version → directory; counts the files it hands out. */
function storeOf(entries: Record<string, Record<number, string>>) {
  const asked: string[] = [];
  const source: AdapterSource = (ref: AdapterRef) => {
    asked.push(`${ref.name}@${ref.version}`);
    const dir = entries[ref.name]?.[ref.version];
    if (!dir) return Promise.reject(Object.assign(new Error(`no adapter "${ref.name}"`), { status: 404 }));
    return Promise.resolve(adapterFiles(dir));
  };
  return { source, asked };
}

async function local(
  model: string,
  source: AdapterSource,
  opts: Partial<Parameters<typeof LocalEngine.create>[0]> = {},
) {
  const e = await LocalEngine.create({ model: caseDir(model), source, ...opts });
  engines.push(e);
  return e;
}

describe('LocalEngine', () => {
  test('generation on mixed adapters (VeRA on GPT-2, LoRA on Llama) equals generate with each alone', async () => {
    for (const [base, adapters] of [
      ['gpt2-lm', gpt2],
      ['llama-lm', llama],
    ] as const) {
      const [x, y] = [...adapters.keys()] as [string, string];
      const { source } = storeOf({ [x]: { 1: adapters.get(x)! }, [y]: { 1: adapters.get(y)! } });
      const engine = await local(base, source, { maxBatch: 4 });
      assert.equal(engine.info.task, 'causal-lm');
      const reqs = [
        { adapter: { name: x, version: 1 }, ids: [3, 9, 4], maxNewTokens: 9 },
        { adapter: { name: y, version: 1 }, ids: [5, 6], maxNewTokens: 12 },
        { adapter: BASE, ids: [8, 1, 2, 7], maxNewTokens: 6 },
        { adapter: { name: x, version: 1 }, ids: [10], maxNewTokens: 7, temperature: 0.9, seed: 5, topK: 10 },
      ].map((r) => ({ ...r, stopTokenIds: [] }));
      const got = await Promise.all(reqs.map((r) => engine.generate(r)));
      for (const [i, r] of reqs.entries()) {
        const dir = r.adapter.name === BASE.name ? null : adapters.get(r.adapter.name)!;
        const sampling = r.temperature
          ? { doSample: true, temperature: r.temperature, seed: r.seed, topK: r.topK }
          : {};
        const want = solo(base, dir, r.ids, { maxNewTokens: r.maxNewTokens, stopTokenIds: [], ...sampling });
        assert.deepEqual(got[i]!.tokens, want, `${base} request ${i}`);
        assert.equal(got[i]!.promptTokens, r.ids.length);
        assert.equal(got[i]!.finishReason, 'length');
      }
      assert.deepEqual(engine.stats().loaded.sort(), [`${x}@1`, `${y}@1`]);
    }
  });

  test('a re-upload is served fresh while a row on the old version finishes on it; LRU beyond maxLoaded', async () => {
    const [a, b] = [...gpt2.values()] as [string, string];
    const { source, asked } = storeOf({ s: { 1: a, 2: b }, t: { 1: b } });
    const engine = await local('gpt2-lm', source, { maxLoaded: 2 });
    let second: Promise<unknown> | null = null;
    let made = 0;
    const first = engine.generate(
      { adapter: { name: 's', version: 1 }, ids: [3, 4], maxNewTokens: 20, stopTokenIds: [] },
      {
        onToken: () => {
          if (++made !== 3) return;
          // The store now has version 2: the HTTP side evicts the older ones and asks for the new one.
          engine.evict('s', 2);
          second = engine.generate({
            adapter: { name: 's', version: 2 },
            ids: [3, 4],
            maxNewTokens: 5,
            stopTokenIds: [],
          });
        },
      },
    );
    const r1 = await first;
    const r2 = (await second!) as { tokens: number[] };
    assert.deepEqual(r1.tokens, solo('gpt2-lm', a, [3, 4], { maxNewTokens: 20, stopTokenIds: [] }));
    assert.deepEqual(r2.tokens, solo('gpt2-lm', b, [3, 4], { maxNewTokens: 5, stopTokenIds: [] }));
    assert.deepEqual(engine.stats().loaded, ['s@2'], 'the old version went once its row finished');
    // LRU: t loads next to s@2; the base does not count.
    await engine.generate({ adapter: { name: 't', version: 1 }, ids: [3], maxNewTokens: 2 });
    await engine.generate({ adapter: BASE, ids: [3], maxNewTokens: 2 });
    assert.deepEqual(engine.stats().loaded, ['s@2', 't@1']);
    assert.deepEqual(asked, ['s@1', 's@2', 't@1']);
  });

  test('bad adapter files are refused with 422 naming the file; a missing adapter keeps the source status', async () => {
    const good = [...gpt2.values()][0]!;
    const broken: AdapterSource = (ref) => {
      const files = adapterFiles(good);
      if (ref.name === 'junk') files['adapter_model.safetensors'] = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]);
      if (ref.name === 'gone') return Promise.reject(Object.assign(new Error('no adapter "gone"'), { status: 404 }));
      return Promise.resolve(files);
    };
    const engine = await local('gpt2-lm', broken);
    await assert.rejects(
      engine.generate({ adapter: { name: 'junk', version: 1 }, ids: [3], maxNewTokens: 2 }),
      (e: EngineError) => e.status === 422 && /adapter "junk".*adapter_model\.safetensors/.test(e.message),
    );
    await assert.rejects(engine.generate({ adapter: { name: 'gone', version: 1 }, ids: [3], maxNewTokens: 2 }), {
      status: 404,
    });
    await assert.rejects(engine.generate({ adapter: BASE, ids: [3], maxNewTokens: 100 }), {
      status: 400,
      message: /exceed the model's 64 positions/,
    });
    const ok = await engine.generate({ adapter: { name: 'fine', version: 1 }, ids: [3], maxNewTokens: 3 });
    assert.equal(ok.tokens.length, 3);
  });

  test('classification and embeddings: batched across adapters, each as its request alone', async () => {
    const dir = join(ADAPTER_FIXTURES, 'gpt2-seqcls-lora');
    const { source } = storeOf({ cls: { 1: dir } });
    const engine = await local('gpt2-seqcls', source, { batchWindowMs: 20 });
    const texts = [
      [3, 9, 4, 7],
      [5, 6],
      [8, 1, 2, 7, 11, 12],
    ];
    const got = await Promise.all(
      texts.map((ids) => engine.classify({ adapter: { name: 'cls', version: 1 }, ids, typeIds: [] })),
    );
    const { model } = loadTrained(caseDir('gpt2-seqcls'), dir, { padTokenId: 0 });
    for (const [i, ids] of texts.entries()) {
      const want = noGrad(() =>
        scope(() => [
          ...(model
            .forward({ inputIds: tensor(Int32Array.from(ids), { dtype: 'i32', shape: [1, ids.length] }) })
            .toArray() as Float32Array),
        ]),
      );
      const diff = Math.max(...want.map((v, j) => Math.abs(v - got[i]!.logits[j]!)));
      assert.ok(diff <= 1e-5, `text ${i}: ${got[i]!.logits} vs ${want}`);
    }
    const together = await Promise.all(texts.map((ids) => engine.embed({ adapter: BASE, ids, typeIds: [] })));
    for (const [i, ids] of texts.entries()) {
      const alone = (await engine.embed({ adapter: BASE, ids, typeIds: [] })).embedding;
      const e = together[i]!.embedding;
      assert.ok(Math.abs(Math.hypot(...e) - 1) < 1e-5, 'unit length');
      assert.ok(Math.max(...e.map((v, j) => Math.abs(v - alone[j]!))) < 1e-5, `embedding ${i}`);
    }
    await assert.rejects(engine.generate({ adapter: BASE, ids: [1], maxNewTokens: 1 }), { status: 400 });
  });
});

describe('WorkerEngine', () => {
  test("gives the local engine's answers, streams, cancels, and survives bad adapter files", async () => {
    const [x, y] = [...llama.keys()] as [string, string];
    const good = storeOf({ [x]: { 1: llama.get(x)! }, [y]: { 1: llama.get(y)! } });
    const source: AdapterSource = (ref) => {
      if (ref.name !== 'junk') return good.source(ref);
      const files = adapterFiles(llama.get(x)!);
      files['adapter_config.json'] = new TextEncoder().encode('{"peft_type": "LORA", "r": ');
      return Promise.resolve(files);
    };
    const worker = await WorkerEngine.start({ model: caseDir('llama-lm'), source, maxBatch: 8 });
    engines.push(worker);
    const loc = await local('llama-lm', good.source, { maxBatch: 8 });
    assert.deepEqual(worker.info.architecture, loc.info.architecture);
    const reqs = [
      { adapter: { name: x, version: 1 }, ids: [3, 9, 4], maxNewTokens: 9, stopTokenIds: [] },
      { adapter: { name: y, version: 1 }, ids: [5, 6], maxNewTokens: 12, temperature: 1.1, seed: 3 },
      { adapter: BASE, ids: [8, 1, 2, 7], maxNewTokens: 6 },
    ];
    const streamed: number[] = [];
    const fromWorker = await Promise.all(
      reqs.map((r, i) => worker.generate(r, i === 0 ? { onToken: (t) => streamed.push(t) } : {})),
    );
    const fromLocal = await Promise.all(reqs.map((r) => loc.generate(r)));
    assert.deepEqual(fromWorker, fromLocal);
    assert.deepEqual(streamed, fromWorker[0]!.tokens);

    await assert.rejects(
      worker.generate({ adapter: { name: 'junk', version: 1 }, ids: [3], maxNewTokens: 2 }),
      (e: EngineError) => e instanceof EngineError && e.status === 422 && /adapter_config\.json/.test(e.message),
    );
    await assert.rejects(worker.generate({ adapter: { name: 'nope', version: 1 }, ids: [3], maxNewTokens: 2 }), {
      status: 404,
      message: /no adapter "nope"/,
    });
    const ctl = new AbortController();
    let n = 0;
    await assert.rejects(
      worker.generate(
        { adapter: BASE, ids: [3], maxNewTokens: 200, stopTokenIds: [] },
        { signal: ctl.signal, onToken: () => ++n === 3 && ctl.abort() },
      ),
      { name: 'AbortError', status: 499 },
    );
    assert.ok(n < 50, `cancelled after ${n} tokens`);
    // Still serving, and its stats say what it did.
    assert.equal((await worker.generate({ adapter: BASE, ids: [3], maxNewTokens: 4 })).tokens.length, 4);
    const stats = worker.stats();
    assert.ok(stats.generatedTokens > 30 && stats.steps > 0, JSON.stringify(stats));
    assert.deepEqual(stats.loaded.sort(), [`${x}@1`, `${y}@1`]);
  });

  test('the main event loop stays free while the worker generates', async () => {
    const { source } = storeOf({});
    const worker = await WorkerEngine.start({ model: caseDir('llama-lm'), source, maxBatch: 16 });
    engines.push(worker);
    const load = () =>
      Promise.all(
        Array.from({ length: 16 }, (_, i) =>
          worker.generate({ adapter: BASE, ids: [3 + i, 4, 5, 6, 7, 8, 9, 10], maxNewTokens: 150, stopTokenIds: [] }),
        ),
      );
    let worst = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      worst = Math.max(worst, now - last - 5);
      last = now;
    }, 5);
    const t0 = performance.now();
    await load();
    const took = performance.now() - t0;
    clearInterval(timer);
    console.log(`worker: ${took.toFixed(0)} ms of generation, main-thread timer at most ${worst.toFixed(1)} ms late`);
    assert.ok(worst < 40, `a 5 ms timer was ${worst.toFixed(1)} ms late`);
  });
});
