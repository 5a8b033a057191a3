// Batching: sampler determinism across instances, per-epoch reshuffling, length bucketing, resume
// equivalence from mid-epoch states, dropLast; the seeded validation split; sequence packing; collate.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { collate } from '../../src/data/batch.js';
import { type Dataset, type Example, IGNORE_INDEX } from '../../src/data/example.js';
import { BatchSampler, type SamplerState, packSequences, splitDataset } from '../../src/data/sampler.js';
import { deriveSeed } from '../../src/data/rng.js';
import { getBackend } from '../../src/backends/registry.js';
import type { Tensor } from '../../src/tensor/tensor.js';

/** n text examples, example i has (i·7 mod 23) + 1 tokens, all equal to i; label i mod 3. */
function toyDataset(n: number, withLength = true): Dataset {
  const len = (i: number) => ((i * 7) % 23) + 1;
  return {
    kind: 'classification',
    length: n,
    get: (i: number): Example => ({ inputIds: new Array<number>(len(i)).fill(i), label: i % 3, source: `toy:${i}` }),
    ...(withLength ? { exampleLength: len } : {}),
  };
}

const flat = (batches: number[][]) => batches.flat();

/** A tensor's values as plain numbers. */
const nums = (t: Tensor) => Array.from(t.toArray() as ArrayLike<number>);

describe('BatchSampler', () => {
  const ds = toyDataset(103);

  test('an epoch is a permutation; the same (seed, epoch) gives the same batches in a new sampler', () => {
    const a = new BatchSampler(ds, { batchSize: 10, shuffle: true, seed: 42 });
    const b = new BatchSampler(ds, { batchSize: 10, shuffle: true, seed: 42 });
    assert.equal(a.batchesPerEpoch, 11);
    const e0 = a.epochBatches(0);
    assert.equal(e0.length, 11);
    assert.deepEqual(
      [...flat(e0)].sort((x, y) => x - y),
      Array.from({ length: 103 }, (_, i) => i),
    );
    assert.deepEqual(e0.at(-1)!.length, 3);
    assert.deepEqual(b.epochBatches(0), e0);
    assert.deepEqual(b.epochBatches(3), a.epochBatches(3));
    assert.notDeepEqual(a.epochBatches(1), e0, 'epochs reshuffle');
    assert.notDeepEqual(new BatchSampler(ds, { batchSize: 10, shuffle: true, seed: 43 }).epochBatches(0), e0);
    // Callers may mutate what they get without changing the sampler.
    e0[0]![0] = -1;
    assert.notEqual(a.epochBatches(0)[0]![0], -1);
  });

  test('pinned order: the shuffle is a fixed function of the seed (MT19937 + Fisher–Yates)', () => {
    // Pinned so that a change to the generator, the seed derivation or the shuffle (which would silently
    // change every run's data order and break resuming old checkpoints) is noticed.
    const s = new BatchSampler(toyDataset(10), { batchSize: 4, shuffle: true, seed: 0 });
    assert.deepEqual(s.epochBatches(0), [
      [7, 5, 2, 0],
      [1, 6, 4, 9],
      [3, 8],
    ]);
    assert.deepEqual(s.epochBatches(1), [
      [1, 7, 4, 3],
      [5, 6, 0, 9],
      [8, 2],
    ]);
    assert.equal(deriveSeed(0, 0, 'shuffle'), 1376263657);
    assert.equal(deriveSeed(1234, 5, 'split'), 3679056819);
    // Seeds derived from (seed, epoch) do not collide the way seed + epoch would.
    assert.notEqual(deriveSeed(1, 0, 'shuffle'), deriveSeed(0, 1, 'shuffle'));
    assert.notEqual(deriveSeed(0, 0, 'shuffle'), deriveSeed(0, 0, 'split'));
    assert.notEqual(deriveSeed(2 ** 32, 0, 'shuffle'), deriveSeed(0, 0, 'shuffle'));
  });

  test('no shuffle: sequential; dropLast drops the short batch', () => {
    const s = new BatchSampler(ds, { batchSize: 10, shuffle: false, seed: 0, dropLast: true });
    assert.equal(s.batchesPerEpoch, 10);
    const e = s.epochBatches(5);
    assert.equal(e.length, 10);
    assert.deepEqual(
      flat(e),
      Array.from({ length: 100 }, (_, i) => i),
    );
    assert.throws(
      () => new BatchSampler(toyDataset(3), { batchSize: 4, shuffle: false, seed: 0, dropLast: true }),
      /no batch/,
    );
  });

  test('bucketByLength: batches hold similar lengths, are shuffled, and cover every example once', () => {
    const big = toyDataset(2000);
    const plain = new BatchSampler(big, { batchSize: 8, shuffle: true, seed: 7 });
    const bucketed = new BatchSampler(big, { batchSize: 8, shuffle: true, seed: 7, bucketByLength: true });
    const padding = (batches: number[][]) => {
      let pad = 0;
      for (const b of batches) {
        const lens = b.map((i) => big.exampleLength!(i));
        pad += lens.reduce((acc, l) => acc + Math.max(...lens) - l, 0);
      }
      return pad;
    };
    const eb = bucketed.epochBatches(0);
    assert.equal(eb.length, 250);
    assert.deepEqual(
      [...flat(eb)].sort((x, y) => x - y),
      Array.from({ length: 2000 }, (_, i) => i),
    );
    assert.ok(padding(eb) * 10 < padding(plain.epochBatches(0)), `${padding(eb)} vs ${padding(plain.epochBatches(0))}`);
    // Batch order is shuffled: lengths are not monotone across batches.
    const firstLens = eb.map((b) => big.exampleLength!(b[0]!));
    assert.ok(firstLens.some((l, k) => k > 0 && l > firstLens[k - 1]!));
    assert.deepEqual(
      new BatchSampler(big, { batchSize: 8, shuffle: true, seed: 7, bucketByLength: true }).epochBatches(0),
      eb,
    );
    // Falls back to get() when the dataset has no exampleLength.
    const viaGet = new BatchSampler(toyDataset(2000, false), {
      batchSize: 8,
      shuffle: true,
      seed: 7,
      bucketByLength: true,
    });
    assert.deepEqual(viaGet.epochBatches(0), eb);
    // With dropLast the short batch goes, wherever shuffling would have put it.
    const dl = new BatchSampler(toyDataset(2003), {
      batchSize: 8,
      shuffle: true,
      seed: 1,
      bucketByLength: true,
      dropLast: true,
    });
    assert.ok(dl.epochBatches(2).every((b) => b.length === 8));
    assert.equal(dl.epochBatches(2).length, 250);
  });

  test('iterate: states advance, epochs roll over, and stop at opts.epochs', () => {
    const s = new BatchSampler(toyDataset(25), { batchSize: 10, shuffle: true, seed: 3 });
    const seen: [number[], SamplerState][] = [...s.iterate(s.start(), { epochs: 2 })];
    assert.equal(seen.length, 6);
    assert.deepEqual(
      seen.map(([, st]) => [st.epoch, st.position]),
      [
        [0, 1],
        [0, 2],
        [1, 0],
        [1, 1],
        [1, 2],
        [2, 0],
      ],
    );
    assert.deepEqual(
      seen.map(([b]) => b),
      [...s.epochBatches(0), ...s.epochBatches(1)],
    );
  });

  test('resume: iterating from any yielded state gives exactly the remaining batches', () => {
    for (const bucketByLength of [false, true]) {
      const opts = { batchSize: 7, shuffle: true, seed: 11, bucketByLength };
      const s = new BatchSampler(toyDataset(50), opts);
      const all = [...s.iterate(s.start(), { epochs: 3 })];
      for (const k of [0, 3, 7, 8, 12, all.length - 1]) {
        // A fresh sampler, as after a restart, resuming from the checkpointed state (JSON round trip).
        const state = JSON.parse(JSON.stringify(all[k]![1])) as SamplerState;
        const fresh = new BatchSampler(toyDataset(50), opts);
        const rest = [...fresh.iterate(state, { epochs: 3 })];
        assert.deepEqual(rest, all.slice(k + 1), `bucket ${bucketByLength}, resume after batch ${k}`);
      }
    }
  });

  test('iterate is unbounded without opts.epochs; bad states are refused', () => {
    const s = new BatchSampler(toyDataset(5), { batchSize: 2, shuffle: true, seed: 1 });
    let count = 0;
    let last: SamplerState = s.start();
    for (const [, st] of s.iterate(s.start())) {
      last = st;
      if (++count === 10) break;
    }
    assert.deepEqual(last, { epoch: 3, position: 1, seed: 1 });
    assert.throws(() => s.iterate({ epoch: 0, position: 0, seed: 2 }), /made with seed 2, this sampler has seed 1/);
    assert.throws(() => s.iterate({ epoch: 0, position: 9, seed: 1 }), /past the 3 batches/);
    // A state at the end of an epoch (position = batchesPerEpoch) means the next epoch.
    const [first] = s.iterate({ epoch: 1, position: 3, seed: 1 });
    assert.deepEqual(first![0], s.epochBatches(2)[0]);
  });
});

describe('splitDataset', () => {
  test('seeded, disjoint, covering, order-preserving, reproducible', () => {
    const ds = toyDataset(100);
    const { train, validation } = splitDataset(ds, { validationFraction: 0.2, seed: 5 });
    assert.equal(validation.length, 20);
    assert.equal(train.length, 80);
    const v = Array.from({ length: validation.length }, (_, i) => validation.get(i).inputIds![0]!);
    const t = Array.from({ length: train.length }, (_, i) => train.get(i).inputIds![0]!);
    assert.deepEqual(
      [...v, ...t].sort((a, b) => a - b),
      Array.from({ length: 100 }, (_, i) => i),
    );
    assert.deepEqual(
      v,
      [...v].sort((a, b) => a - b),
    );
    assert.equal(train.kind, 'classification');
    assert.equal(train.exampleLength!(0), ds.exampleLength!(t[0]!));
    const again = splitDataset(ds, { validationFraction: 0.2, seed: 5 }).validation;
    assert.deepEqual(
      Array.from({ length: again.length }, (_, i) => again.get(i).source),
      v.map((i) => `toy:${i}`),
    );
    const other = splitDataset(ds, { validationFraction: 0.2, seed: 6 }).validation;
    assert.notDeepEqual(
      Array.from({ length: other.length }, (_, i) => other.get(i).inputIds![0]),
      v,
    );
    assert.equal(splitDataset(toyDataset(3), { validationFraction: 0.01, seed: 0 }).validation.length, 1);
    assert.throws(() => splitDataset(ds, { validationFraction: 1, seed: 0 }), /\[0, 1\)/);
    assert.throws(() => validation.get(20), RangeError);
  });
});

describe('packSequences', () => {
  test('concatenates with EOS between examples, cuts blocks, drops the tail, keeps masked labels', () => {
    const EOS = 99;
    const docs: Example[] = [
      { inputIds: [1, 2, 3], labels: [IGNORE_INDEX, 2, 3] },
      { inputIds: [4, 5, EOS] },
      { inputIds: [6, 7, 8, 9] },
    ];
    const ds: Dataset = { kind: 'causal-lm', length: docs.length, get: (i) => docs[i]! };
    const packed = packSequences(ds, 4, EOS);
    // Stream: 1 2 3 99 | 4 5 99 6 | 7 8 9 99  (12 tokens, 3 blocks, no tail)
    assert.equal(packed.length, 3);
    assert.deepEqual(
      [0, 1, 2].map((b) => packed.get(b).inputIds),
      [
        [1, 2, 3, EOS],
        [4, 5, EOS, 6],
        [7, 8, 9, EOS],
      ],
    );
    assert.deepEqual(packed.get(0).labels, [IGNORE_INDEX, 2, 3, EOS]);
    assert.deepEqual(packed.get(1).labels, [4, 5, EOS, 6]);
    const five = packSequences(ds, 5, EOS);
    assert.equal(five.length, 2);
    assert.deepEqual(five.get(1).inputIds, [5, EOS, 6, 7, 8]);
    assert.throws(() => packSequences(ds, 13, EOS), /12 tokens in all, fewer than one block of 13/);
    assert.throws(() => packSequences(ds, 0, EOS), RangeError);
  });
});

describe('collate', () => {
  const js = getBackend('js');

  test('classification: right padding, mask, labels [B], tokens counted', () => {
    const exs: Example[] = [
      { inputIds: [5, 6, 7], tokenTypeIds: [0, 0, 1], label: 1 },
      { inputIds: [8], tokenTypeIds: [0], label: 0 },
    ];
    const b = collate(exs, { kind: 'classification', padId: 2, backend: js });
    assert.deepEqual(b.inputIds!.shape, [2, 3]);
    assert.equal(b.inputIds!.dtype, 'i32');
    assert.deepEqual(nums(b.inputIds!), [5, 6, 7, 8, 2, 2]);
    assert.deepEqual(nums(b.attentionMask!), [1, 1, 1, 1, 0, 0]);
    assert.deepEqual(nums(b.tokenTypeIds!), [0, 0, 1, 0, 0, 0]);
    assert.equal(b.labels.dtype, 'i32');
    assert.deepEqual(nums(b.labels), [1, 0]);
    assert.equal(b.size, 2);
    assert.equal(b.tokens, 4);
  });

  test('regression labels are f32; causal LM labels are −100 padded, left padding too', () => {
    const r = collate([{ inputIds: [1], label: 0.5 }], { kind: 'regression', padId: 0, backend: js });
    assert.equal(r.labels.dtype, 'f32');
    assert.deepEqual(nums(r.labels), [0.5]);
    assert.equal(r.tokenTypeIds, undefined);
    const lm = collate([{ inputIds: [1, 2, 3], labels: [IGNORE_INDEX, 2, 3] }, { inputIds: [4] }], {
      kind: 'causal-lm',
      padId: 0,
      paddingSide: 'left',
      backend: js,
    });
    assert.deepEqual(nums(lm.inputIds!), [1, 2, 3, 0, 0, 4]);
    assert.deepEqual(nums(lm.attentionMask!), [1, 1, 1, 0, 0, 1]);
    assert.deepEqual(lm.labels.shape, [2, 3]);
    assert.deepEqual(nums(lm.labels), [IGNORE_INDEX, 2, 3, IGNORE_INDEX, IGNORE_INDEX, 4]);
  });

  test('with vocabSize, ids, the pad id and causal-LM labels outside the vocabulary are errors naming them', () => {
    const ok = collate([{ inputIds: [1, 9], label: 0 }], {
      kind: 'classification',
      padId: 0,
      vocabSize: 10,
      backend: js,
    });
    assert.deepEqual(nums(ok.inputIds!), [1, 9]);
    assert.throws(
      () =>
        collate(
          [
            { inputIds: [1], label: 0 },
            { inputIds: [3, 10], label: 1, source: 'b.csv:2' },
          ],
          {
            kind: 'classification',
            padId: 0,
            vocabSize: 10,
            backend: js,
          },
        ),
      /\[collate\] b\.csv:2: inputIds: token id 10 at position 1 is outside the model's vocabulary \(vocab_size 10\)/,
    );
    assert.throws(
      () => collate([{ inputIds: [1], label: 0 }], { kind: 'classification', padId: 12, vocabSize: 10, backend: js }),
      /\[collate\] padId: token id 12/,
    );
    assert.throws(
      () =>
        collate([{ inputIds: [1, 2], labels: [IGNORE_INDEX, 11], source: 'c:1' }], {
          kind: 'causal-lm',
          padId: 0,
          vocabSize: 10,
          backend: js,
        }),
      /c:1: label 11 at position 1 is neither -100 nor a token id \(vocab_size 10\)/,
    );
  });

  test('images stack to [B, 3, H, W]; errors name the example', () => {
    const px = (v: number) => new Float32Array(3 * 2 * 2).fill(v);
    const b = collate(
      [
        { pixelValues: px(1), label: 2 },
        { pixelValues: px(2), label: 0 },
      ],
      { kind: 'image-classification', padId: 0, backend: js },
    );
    assert.deepEqual(b.pixelValues!.shape, [2, 3, 2, 2]);
    assert.equal(b.tokens, 0);
    const wide = collate([{ pixelValues: new Float32Array(3 * 2 * 4), label: 0 }], {
      kind: 'image-classification',
      padId: 0,
      imageShape: [3, 2, 4],
      backend: js,
    });
    assert.deepEqual(wide.pixelValues!.shape, [1, 3, 2, 4]);
    assert.throws(
      () => collate([{ inputIds: [1], source: 'a.csv:3' }], { kind: 'classification', padId: 0, backend: js }),
      /a\.csv:3 has no label/,
    );
    assert.throws(
      () => collate([{ label: 1, source: 'x:1' }], { kind: 'classification', padId: 0 }),
      /x:1 has no inputIds/,
    );
    assert.throws(
      () => collate([{ inputIds: [1, 2], labels: [1], source: 'y:2' }], { kind: 'causal-lm', padId: 0 }),
      /y:2: 1 labels for 2 inputIds/,
    );
    assert.throws(() => collate([], { kind: 'classification', padId: 0 }), /empty batch/);
  });
});
