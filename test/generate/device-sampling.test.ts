// Choosing tokens on the backend gives the tokens the host processors (sampling.ts) give on whole rows of
// logits: the penalty kernel against applyRepetitionPenalty, candidates with ties at the k-th value (read
// again in full when they may run past what was read), the seeded draws stream for stream, and whole
// generations (greedy and sampled, batched, with and without the penalty, top-k on and off) against a
// reference loop that reads every logits row and calls nextToken, as generation did before.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { noGrad } from '../../src/autograd/graph.js';
import type { Backend } from '../../src/backends/backend.js';
import { getBackend, nativeAvailable } from '../../src/backends/registry.js';
import {
  drawFromRow,
  drawFromSurvivors,
  penalize,
  survivors,
  topCandidates,
  topKOf,
} from '../../src/generate/device-sampling.js';
import { Decoder, type GenerateOptions, generate } from '../../src/generate/generate.js';
import { applyRepetitionPenalty, nextToken } from '../../src/generate/sampling.js';
import { loadModel } from '../../src/models/auto.js';
import type { PreTrainedModel } from '../../src/models/pretrained.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { scope } from '../../src/tensor/scope.js';
import { countingBackend } from '../helpers/counting.js';
import { caseDir } from '../models/fixtures.js';

const backends: [string, Backend][] = [['js', getBackend('js')]];
if (nativeAvailable()) backends.push(['native', getBackend('native')]);

/** The next token of each row as generation chose it before: the whole row on the host, nextToken. */
function hostStep(rows: Float32Array[], seen: number[][], o: GenerateOptions, g: Generator): number[] {
  return rows.map((row, r) => nextToken(row, seen[r]!, o, g));
}

/** The device path on the same rows: candidates, or whole rows when top-k is off or a tie may run on. */
function deviceStep(be: Backend, rows: Float32Array[], o: GenerateOptions, g: Generator): number[] {
  const v = rows[0]!.length;
  const scores = tensor(Float32Array.from(rows.flatMap((r) => [...r])), { shape: [rows.length, v], backend: be });
  const k = topKOf(o, v);
  const read = Math.min(v, k + 1);
  const packed = k > 0 ? scope(() => topCandidates(scores, read).toArray()) : null;
  return rows.map((row, r) => {
    const kept = packed ? survivors(packed, r, read, k, v) : null;
    return kept ? drawFromSurvivors(kept, o, g) : drawFromRow(row, o, g);
  });
}

describe('sampling on the backend', () => {
  for (const [name, be] of backends) {
    test(`${name}: the penalty kernel equals applyRepetitionPenalty (a factor exact in f32)`, () => {
      const row = Float32Array.from([2.5, -1.25, 0, 3, -7, 1]);
      const seen = [0, 1, 3, 4];
      const counts = Float32Array.from(row, (_, i) => seen.filter((s) => s === i).length);
      const got = scope(() =>
        penalize(
          tensor(row, { shape: [1, 6], backend: be }),
          tensor(counts, { shape: [1, 6], backend: be }),
          2,
        ).toArray(),
      );
      const want = Float64Array.from(row);
      applyRepetitionPenalty(want, seen, 2);
      assert.deepEqual([...got], [...want]);
    });

    test(`${name}: candidates with ties at the k-th value, and the draws, equal nextToken on whole rows`, () => {
      const g = new Generator(11);
      const rows = Array.from({ length: 40 }, () =>
        Float32Array.from(g.uniform(24, -3, 3), (x) => Math.round(x * 2) / 2),
      );
      for (const o of [
        { doSample: true, topK: 3 },
        { doSample: true, topK: 5, temperature: 0.7, topP: 0.8 },
        { doSample: true, topK: 1 },
        { doSample: true, topK: 23, topP: 0.5 },
        { doSample: true, topK: 0, topP: 0.9, temperature: 2 },
      ]) {
        const [ga, gb] = [new Generator(5), new Generator(5)];
        const want = hostStep(
          rows,
          rows.map(() => []),
          o,
          ga,
        );
        assert.deepEqual(deviceStep(be, rows, o, gb), want, JSON.stringify(o));
        assert.equal(gb.uniform(1, 0, 1)[0], ga.uniform(1, 0, 1)[0], 'one draw per row, as on the host');
      }
    });
  }

  test('survivors: a tie with the k-th value at the end of the read candidates asks for the whole row', () => {
    // Row 0: values 5, 3, 3 | 3, 1 with k = 2 and 3 read: the third 3 may not be the last.
    const packed = Float32Array.from([5, 3, 3, 0, 1, 2, 5, 4, 3, 0, 2, 1]);
    assert.equal(survivors(packed, 0, 3, 2, 5), null);
    // Row 1: 5, 4 | 3: no tie with the k-th (4).
    assert.deepEqual(survivors(packed, 1, 3, 2, 5), [
      { index: 0, score: 5 },
      { index: 2, score: 4 },
    ]);
    // Every token read: ties cannot run on.
    assert.deepEqual(
      survivors(Float32Array.from([2, 2, 1, 0]), 0, 2, 1, 2)?.map((c) => c.index),
      [0, 1],
    );
  });
});

/** Generation as it was: the whole [B, V] logits read every step, tokens chosen by nextToken on the host. */
function referenceGenerate(model: PreTrainedModel, prompts: number[][], o: GenerateOptions): number[][] {
  const g = new Generator(o.seed!);
  const seqs = prompts.map((p) => [...p]);
  const out = prompts.map((): number[] => []);
  for (let step = 0; step < o.maxNewTokens!; step++) {
    const rows = seqs.map((s) =>
      noGrad(() =>
        scope(() => {
          const ids = tensor(Int32Array.from(s), {
            dtype: 'i32',
            shape: [1, s.length],
            backend: model.parameters()[0]!.backend,
          });
          return model.forward({ inputIds: ids, logitsToKeep: 1 }).toArray() as Float32Array;
        }),
      ),
    );
    const tokens = hostStep(rows, seqs, o, g);
    tokens.forEach((t, r) => (seqs[r]!.push(t), out[r]!.push(t)));
  }
  return out;
}

describe('generation with tokens chosen on the backend equals the host reference', () => {
  for (const [name, be] of backends) {
    const model = loadModel(caseDir('llama-lm'), { backend: be });
    const prompts = [[3, 9, 27, 4], [11, 5, 8, 60, 2, 70, 1], [42]];
    for (const o of [
      { doSample: false, repetitionPenalty: 2 },
      { doSample: true, temperature: 1.5, topK: 20, topP: 0.9 },
      { doSample: true, topK: 0, topP: 0.7, repetitionPenalty: 2 },
      { doSample: true, temperature: 0.8, topK: 3, repetitionPenalty: 0.5 },
    ])
      test(`${name}: ${JSON.stringify(o)}`, () => {
        // Without the cache and one prompt at a time, both compute the same logits (same shapes, no
        // padding), so any difference would come from how tokens are chosen.
        const opts = { ...o, seed: 7, maxNewTokens: 10, stopTokenIds: [], useCache: false };
        const want = prompts.map((p) => referenceGenerate(model, [p], opts)[0]!);
        assert.deepEqual(
          prompts.map((p) => generate(model, [p], opts)[0]),
          want,
        );
      });
  }

  test('a tie at the k-th candidate in a decoding step reads the whole rows (2 reads)', () => {
    // A stand-in causal LM whose logits rows tie at the top-k boundary (and one that does not).
    const c = countingBackend(getBackend('js'));
    const rows = [Float32Array.from([4, 1, 3, 3, 3, 0, 0, 0]), Float32Array.from([4, 1, 3, 2, 0, 0, 0, 0])];
    const fake = {
      task: 'causal-lm',
      architecture: 'FakeForCausalLM',
      config: { vocab_size: 8 },
      parameters: () => [tensor([0], { backend: c.backend })],
      forward: () => tensor(Float32Array.from([...rows[0]!, ...rows[1]!]), { shape: [2, 1, 8], backend: c.backend }),
    } as unknown as PreTrainedModel;
    const o = { doSample: true, topK: 2, seed: 3, maxNewTokens: 1, stopTokenIds: [] };
    const d = new Decoder(fake, [[1], [2]], o);
    c.reset();
    const { tokens } = d.stepSync();
    d.dispose();
    assert.deepEqual(
      c.reads.map((r) => r.shape),
      [
        [2, 6],
        [2, 8],
      ],
      'the k + 1 = 3 candidates (values and ids), then the whole rows',
    );
    assert.deepEqual(tokens, hostStep(rows, [[1], [2]], o, new Generator(3)));
  });
});
