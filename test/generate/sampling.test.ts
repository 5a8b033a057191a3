// The logits processors against transformers' rules: repetition penalty, temperature, top-k, top-p,
// first-maximum argmax, and the seeded draw; and the KV cache's append/grow semantics.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { getBackend } from '../../src/backends/registry.js';
import { KVCache } from '../../src/generate/kv-cache.js';
import { applyRepetitionPenalty, argmaxOf, nextToken, sampleFrom, warp } from '../../src/generate/sampling.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';

describe('sampling', () => {
  test('repetition penalty: negative scores multiply, positive divide, once per distinct token', () => {
    const s = Float64Array.from([2, -2, 4, 1]);
    applyRepetitionPenalty(s, [0, 1, 0, 0], 2);
    assert.deepEqual([...s], [1, -4, 4, 1]);
  });

  test('argmax takes the first maximum', () => {
    assert.equal(argmaxOf([1, 3, 3, 2]), 1);
  });

  test('temperature, then top-k keeps ties with the k-th value', () => {
    const s = Float64Array.from([2, 4, 4, 0, 6]);
    warp(s, { temperature: 2, topK: 2, topP: 1 });
    assert.deepEqual([...s], [-Infinity, 2, 2, -Infinity, 3]);
  });

  test('top-p removes the tail whose cumulative probability is ≤ 1 − p, keeping at least one', () => {
    const probs = [0.5, 0.3, 0.15, 0.05];
    const s = Float64Array.from(probs.map(Math.log));
    warp(s, { topK: 0, topP: 0.6 });
    assert.deepEqual(
      [...s].map((x) => x === -Infinity),
      [false, false, true, true],
    );
    const one = Float64Array.from(probs.map(Math.log));
    warp(one, { topK: 0, topP: 0.01 });
    assert.deepEqual(
      [...one].map((x) => x === -Infinity),
      [false, true, true, true],
    );
  });

  test('seeded draws follow the distribution and never pick filtered tokens', () => {
    const g = new Generator(0);
    const counts = [0, 0, 0];
    const s = Float64Array.from([Math.log(0.2), -Infinity, Math.log(0.8)]);
    for (let i = 0; i < 4000; i++) counts[sampleFrom(s, g)]!++;
    assert.equal(counts[1], 0);
    assert.ok(Math.abs(counts[2]! / 4000 - 0.8) < 0.03, `frequency ${counts[2]! / 4000}`);
    assert.equal(nextToken([0, 5, 1], [], {}, g), 1);
  });
});

describe('KVCache', () => {
  test('appends along T, grows past its capacity, and returns everything cached', () => {
    const backend = getBackend('js');
    const cache = new KVCache({ capacity: 2 });
    const step = (base: number, t: number) =>
      tensor(
        Float32Array.from({ length: t * 2 }, (_, i) => base + i),
        { shape: [1, t, 1, 2], backend },
      );
    cache.update(0, step(0, 2), step(100, 2));
    const { k, v } = cache.update(0, step(10, 1), step(110, 1));
    assert.equal(cache.length, 3);
    assert.deepEqual(k.shape, [1, 3, 1, 2]);
    assert.deepEqual([...(k.toArray() as Float32Array)], [0, 1, 2, 3, 10, 11]);
    assert.deepEqual([...(v.toArray() as Float32Array)], [100, 101, 102, 103, 110, 111]);
    const wrongHeads = tensor(Float32Array.from([1, 2]), { shape: [1, 1, 2, 1], backend });
    assert.throws(() => cache.update(0, wrongHeads, wrongHeads), /Layer 0 holds \[1, T, 1, 2\] entries/);
    cache.dispose();
    assert.equal(cache.length, 0);
  });
});
