// Continuous batching (src/generate/continuous.ts) on the GPT-2 fixture with VeRA adapters and the Llama
// fixture with LoRA adapters: greedy rows that join at different steps, each on its own adapter, give
// exactly the tokens `generate` gives with that adapter alone; seeded sampled rows give the same tokens
// in any company (and as generate alone with that seed); a cancelled row leaves and the others go on; a
// short request that arrives while a long one runs finishes first (and in static mode it waits); a
// step reads only the chosen ids (or one packed tensor of candidates when a row samples).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BASE_ADAPTER } from '../../src/adapters/mixed.js';
import { getBackend, nativeAvailable } from '../../src/backends/registry.js';
import { loadModel } from '../../src/models/auto.js';
import { countingBackend } from '../helpers/counting.js';
import { caseDir } from '../models/fixtures.js';
import type { PeftModel } from '../../src/adapters/peft-model.js';
import { ContinuousBatcher, type RowRequest, type RowResult } from '../../src/generate/continuous.js';
import type { PreTrainedModel } from '../../src/models/pretrained.js';
import { scratch } from '../train/helpers.js';
import { type LmBase, loadAll, makeAdapters, solo } from './continuous-fixtures.js';

const { dir: root, cleanup } = scratch('continuous');
after(cleanup);

const BASES: LmBase[] = ['gpt2-lm', 'llama-lm'];
const adapters = new Map<LmBase, Map<string, string>>();
const pefts = new Map<LmBase, PeftModel<PreTrainedModel>>();
before(() => {
  for (const base of BASES) {
    adapters.set(base, makeAdapters(root, base, [1, 2]));
    pefts.set(base, loadAll(base, adapters.get(base)!));
  }
});

function batcher(base: LmBase, opts: { maxRows?: number; mode?: 'static' | 'continuous'; capacity?: number } = {}) {
  const peft = pefts.get(base)!;
  return new ContinuousBatcher<string>(peft.model, {
    ...opts,
    around: (keys, forward) => peft.withAdapterNames(keys, forward),
  });
}

const dirOf = (base: LmBase, key: string) => (key === BASE_ADAPTER ? null : adapters.get(base)!.get(key)!);

for (const base of BASES) {
  describe(`continuous batching on ${base}`, () => {
    const names = () => [...adapters.get(base)!.keys()];

    test('greedy rows joining at different steps, each on its adapter, equal generate with it alone', async () => {
      const [x, y] = names() as [string, string];
      const b = batcher(base, { maxRows: 3, capacity: 4 });
      // Prompts of different lengths (a later one longer than the running rows: the cache re-lays out).
      const reqs: RowRequest<string>[] = [
        { key: x, ids: [3, 9], maxNewTokens: 14 },
        { key: y, ids: [5, 6, 7], maxNewTokens: 9 },
        { key: BASE_ADAPTER, ids: [11], maxNewTokens: 6 },
        { key: y, ids: [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30], maxNewTokens: 7 },
        { key: x, ids: [7, 7, 7, 1], maxNewTokens: 12 },
      ].map((r) => ({ ...r, stopTokenIds: [] }));
      const out: Promise<RowResult>[] = [];
      // The first two now; the others when the first has made 2, 4 and 5 tokens.
      const later = new Map([
        [2, [2]],
        [4, [3]],
        [5, [4]],
      ]);
      let made = 0;
      reqs[0]!.onToken = () => {
        for (const i of later.get(++made) ?? []) out[i] = b.submit(reqs[i]!);
      };
      out[0] = b.submit(reqs[0]!);
      out[1] = b.submit(reqs[1]!);
      const first = await out[0];
      const got = await Promise.all(out);
      assert.equal(first.finishReason, 'length');
      for (const [i, r] of reqs.entries()) {
        const want = solo(base, dirOf(base, r.key), r.ids, { maxNewTokens: r.maxNewTokens, stopTokenIds: [] });
        assert.deepEqual(got[i]!.tokens, want, `request ${i} (${r.key})`);
      }
      assert.notDeepEqual(got[0]!.tokens.slice(0, 6), got[2]!.tokens, 'adapters change the tokens');
      assert.ok(b.stats.steps < reqs.reduce((s, r) => s + r.maxNewTokens, 0), 'rows shared steps');
      await b.close();
    });

    test('seeded sampled rows give the same tokens alone and in company, as generate with that seed', async () => {
      const [x, y] = names() as [string, string];
      const sampled: RowRequest<string> = {
        key: x,
        ids: [4, 8, 15],
        maxNewTokens: 10,
        temperature: 0.8,
        topK: 20,
        topP: 0.9,
        seed: 42,
        stopTokenIds: [],
      };
      const b = batcher(base, { maxRows: 4 });
      const aloneInBatch = await b.submit(sampled);
      const company = [
        b.submit({ key: y, ids: [1, 2, 3, 4], maxNewTokens: 12, temperature: 1.3, seed: 7, stopTokenIds: [] }),
        b.submit({ key: BASE_ADAPTER, ids: [9], maxNewTokens: 8, stopTokenIds: [] }),
        b.submit({ ...sampled }),
        b.submit({ key: y, ids: [30, 31], maxNewTokens: 5, temperature: 0.5, topK: 0, seed: 3, stopTokenIds: [] }),
      ];
      const inCompany = (await Promise.all(company))[2]!;
      assert.deepEqual(inCompany.tokens, aloneInBatch.tokens);
      const want = solo(base, dirOf(base, x), sampled.ids, {
        maxNewTokens: 10,
        doSample: true,
        temperature: 0.8,
        topK: 20,
        topP: 0.9,
        seed: 42,
        stopTokenIds: [],
      });
      assert.deepEqual(aloneInBatch.tokens, want);
      await b.close();
    });
  });
}

describe('rows leave and join', () => {
  const base: LmBase = 'gpt2-lm';

  test('a cancelled row leaves at the next step; the others go on to their own tokens', async () => {
    const [x, y] = [...adapters.get(base)!.keys()] as [string, string];
    const b = batcher(base);
    const ctl = new AbortController();
    let seen = 0;
    const cancelled = b.submit({
      key: x,
      ids: [3, 4],
      maxNewTokens: 30,
      stopTokenIds: [],
      signal: ctl.signal,
      onToken: () => ++seen === 3 && ctl.abort(),
    });
    const other = b.submit({ key: y, ids: [5, 6, 7], maxNewTokens: 15, stopTokenIds: [] });
    const c = await cancelled;
    assert.equal(c.finishReason, 'cancelled');
    assert.ok(c.tokens.length >= 3 && c.tokens.length <= 4, `${c.tokens.length} tokens`);
    assert.deepEqual(
      (await other).tokens,
      solo(base, dirOf(base, y), [5, 6, 7], { maxNewTokens: 15, stopTokenIds: [] }),
    );
    // Cancelled while waiting (all rows taken): settled at once, without running.
    const one = batcher(base, { maxRows: 1 });
    const busy = one.submit({ key: x, ids: [3], maxNewTokens: 10, stopTokenIds: [] });
    const ctl2 = new AbortController();
    const queued = one.submit({ key: y, ids: [4], maxNewTokens: 10, stopTokenIds: [], signal: ctl2.signal });
    ctl2.abort();
    assert.deepEqual(await queued, { tokens: [], finishReason: 'cancelled' });
    assert.equal((await busy).tokens.length, 10);
    await Promise.all([b.close(), one.close()]);
  });

  test('a short request that arrives while a long one runs finishes first; static mode makes it wait', async () => {
    for (const mode of ['continuous', 'static'] as const) {
      const b = batcher(base, { mode });
      const order: string[] = [];
      let longMade = 0;
      let shortStarted = false;
      let short: Promise<RowResult> | null = null;
      const long = b
        .submit({
          key: BASE_ADAPTER,
          ids: [3, 9, 4],
          maxNewTokens: 40,
          stopTokenIds: [],
          onToken: () => {
            if (++longMade !== 2 || shortStarted) return;
            shortStarted = true;
            short = b
              .submit({ key: BASE_ADAPTER, ids: [8], maxNewTokens: 4, stopTokenIds: [] })
              .then((r) => (order.push(`short after ${longMade} long tokens`), r));
          },
        })
        .then((r) => (order.push('long'), r));
      await long;
      await short;
      if (mode === 'continuous') {
        assert.match(order[0]!, /^short after ([2-9]|1\d) long tokens$/, order.join(', '));
        assert.equal(order[1], 'long');
      } else assert.deepEqual(order, ['long', 'short after 40 long tokens']);
      await b.close();
    }
  });

  test('a stop token ends a row with finish reason "stop"; bad requests are refused by name', async () => {
    const b = batcher(base);
    const free = solo(base, null, [3, 9], { maxNewTokens: 8, stopTokenIds: [] });
    const r = await b.submit({ key: BASE_ADAPTER, ids: [3, 9], maxNewTokens: 8, stopTokenIds: [free[2]!] });
    assert.deepEqual(r, { tokens: free.slice(0, free.indexOf(free[2]!) + 1), finishReason: 'stop' });
    await assert.rejects(b.submit({ key: BASE_ADAPTER, ids: [], maxNewTokens: 3 }), /at least one token/);
    await assert.rejects(b.submit({ key: BASE_ADAPTER, ids: [100000], maxNewTokens: 3 }), /100000/);
    await assert.rejects(b.submit({ key: BASE_ADAPTER, ids: [1], maxNewTokens: 3, temperature: 1, topP: 2 }), /topP/);
    assert.deepEqual(await b.submit({ key: BASE_ADAPTER, ids: [1], maxNewTokens: 0 }), {
      tokens: [],
      finishReason: 'length',
    });
    await b.close();
  });
});

describe('host transfers of continuous batching', () => {
  test('a greedy step reads its B ids and uploads nothing; a prefill uploads its prompt; sampled steps read one packed tensor', async () => {
    const c = countingBackend(getBackend(nativeAvailable() ? 'native' : 'js'));
    const model = loadModel(caseDir('llama-lm'), { backend: c.backend });
    const b = new ContinuousBatcher<null>(model, { maxRows: 4, capacity: 4 });
    await b.submit({ key: null, ids: [1, 2], maxNewTokens: 2 }); // kept constants upload on the first forward
    const before = b.stats;
    c.reset();
    const prompts = [[3, 9], [5, 6, 7, 8, 9, 10, 11, 12, 13], [4]];
    await Promise.all(prompts.map((ids) => b.submit({ key: null, ids, maxNewTokens: 8, stopTokenIds: [] })));
    const runs = { prefills: b.stats.prefills - before.prefills, steps: b.stats.steps - before.steps };
    assert.equal(runs.prefills, 3);
    assert.equal(c.reads.length, runs.prefills + runs.steps, 'one read per prefill and per step');
    for (const r of c.reads)
      assert.ok(r.dtype === 'i32' && r.shape.length === 1 && r.shape[0]! <= 3, JSON.stringify(r));
    assert.deepEqual(c.uploads.sort(), prompts.map((p) => p.length).sort(), 'only the prompts are uploaded');
    c.reset();
    const s0 = b.stats;
    await Promise.all([
      b.submit({ key: null, ids: [3, 9], maxNewTokens: 5, temperature: 0.7, seed: 1, stopTokenIds: [] }),
      b.submit({ key: null, ids: [4], maxNewTokens: 5, stopTokenIds: [] }),
    ]);
    const n = b.stats.prefills - s0.prefills + b.stats.steps - s0.steps;
    assert.equal(c.reads.length, n, 'top-k candidates and the argmax in one read');
    await b.close();
  });
});
