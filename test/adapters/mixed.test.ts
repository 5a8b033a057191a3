// Mixed-adapter batches (PeftModel.withAdapterNames, PEFT's adapter_names): every row of a batch gives
// what it gives when the batch runs that row's adapter alone (or no adapter) — VeRA through its one-pass
// path, LoRA through the generic masked one, classification heads (modules_to_save) routed per row —
// and generation with a mixed batch gives each row the tokens of its own adapter.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BASE_ADAPTER, getPeftModel, loraConfig, veraConfig } from '../../src/adapters/index.js';
import { ModulesToSaveWrapper } from '../../src/adapters/modules-to-save.js';
import type { PeftModel } from '../../src/adapters/peft-model.js';
import { noGrad } from '../../src/autograd/graph.js';
import { generate } from '../../src/generate/generate.js';
import { loadModel } from '../../src/models/auto.js';
import type { PreTrainedModel } from '../../src/models/pretrained.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { scope } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { caseDir } from '../models/fixtures.js';

/** Seeded non-trivial values for an adapter's trained tensors (an identity adapter would test nothing). */
function randomize(peft: PeftModel<PreTrainedModel>, name: string, seed: number): void {
  const g = new Generator(seed);
  noGrad(() => {
    for (const t of peft.adapterStateDict(name).values()) {
      if (t.dtype !== 'f32' || !t.requiresGrad) continue;
      const v = tensor(g.uniform(t.numel, -0.5, 0.5), { shape: t.shape, backend: t.backend });
      t.backend.copy(t.view('randomize'), v.view('randomize'));
      v.dispose();
    }
  });
}

/** A model with adapters a and b (trainable while set up, so every trained tensor gets values), in eval mode. */
function adapted(base: string, config: () => Parameters<typeof getPeftModel>[1]): PeftModel<PreTrainedModel> {
  const peft = getPeftModel(loadModel(caseDir(base)), config(), { adapterName: 'a' });
  randomize(peft, 'a', 1);
  peft.addAdapter('b', config()); // the new adapter is the trainable one now
  randomize(peft, 'b', 2);
  peft.model.eval();
  return peft;
}

const IDS = [
  [5, 17, 3, 99, 42, 8],
  [61, 2, 77, 13, 9, 30],
  [4, 4, 120, 56, 7, 1],
  [33, 90, 11, 2, 64, 19],
];
const inputIds = () => tensor(Int32Array.from(IDS.flat()), { dtype: 'i32', shape: [IDS.length, IDS[0]!.length] });

/** Row r of the batch's output when the whole batch runs `name` (BASE_ADAPTER: adapters off). */
function alone(peft: PeftModel<PreTrainedModel>, name: string): Float32Array[] {
  const run = () => noGrad(() => scope(() => peft.model.forward({ inputIds: inputIds() }).toArray() as Float32Array));
  let out: Float32Array;
  if (name === BASE_ADAPTER) out = peft.disableAdapter(run);
  else {
    peft.setAdapter(name);
    out = run();
  }
  const n = out.length / IDS.length;
  return IDS.map((_, r) => out.subarray(r * n, (r + 1) * n));
}

function assertRowsMatch(peft: PeftModel<PreTrainedModel>, names: string[]): void {
  const mixed = noGrad(() =>
    scope(() =>
      peft.withAdapterNames(names, () => peft.model.forward({ inputIds: inputIds() }).toArray() as Float32Array),
    ),
  );
  const n = mixed.length / IDS.length;
  const seen = new Set<string>();
  names.forEach((name, r) => {
    const want = alone(peft, name)[r]!;
    const got = mixed.subarray(r * n, (r + 1) * n);
    const worst = Math.max(...got.map((v, i) => Math.abs(v - want[i]!)));
    assert.ok(worst <= 1e-5, `row ${r} (${name}) differs by ${worst}`);
    seen.add(name);
  });
  // The adapters really differ from each other and from the base, so routing is tested.
  const row0 = [...seen].map((name) => alone(peft, name)[0]!);
  for (let i = 0; i < row0.length; i++)
    for (let j = i + 1; j < row0.length; j++)
      assert.notDeepEqual(row0[i], row0[j], `${[...seen][i]} vs ${[...seen][j]}`);
}

/** Records, for every forward of a head copy inside withAdapterNames, which copy ran on how many rows. */
function spyHeads(peft: PeftModel<PreTrainedModel>): { mixed: string[] } {
  const seen = { mixed: [] as string[] };
  for (const [, m] of peft.model.namedModules()) {
    if (!(m instanceof ModulesToSaveWrapper)) continue;
    const copies: [string, { forward(...a: unknown[]): Tensor }][] = [
      ['original', m.original_module],
      ...[...m.modules_to_save.entries()],
    ];
    for (const [name, copy] of copies) {
      const forward = copy.forward.bind(copy);
      copy.forward = (...a: unknown[]) => {
        if (m.rowAdapters !== null) seen.mixed.push(`${name}:${(a[0] as Tensor).shape[0]}`);
        return forward(...a);
      };
    }
  }
  return seen;
}

describe('mixed-adapter batches', () => {
  test('VeRA (one pass for every adapter) on a causal LM: each row as if alone', () => {
    const peft = adapted('gpt2-lm', () =>
      veraConfig({ r: 8, target_modules: ['c_attn', 'c_fc'], projection_prng_key: 3 }),
    );
    assertRowsMatch(peft, ['a', 'b', BASE_ADAPTER, 'a']);
    assertRowsMatch(peft, ['b', 'b', 'b', 'b']);
  });

  test('VeRA with a classification head per adapter (modules_to_save): rows use their own head', () => {
    const peft = adapted('llama-seqcls', () =>
      veraConfig({ r: 8, target_modules: ['q_proj', 'v_proj'], modules_to_save: ['score'], task_type: 'SEQ_CLS' }),
    );
    assertRowsMatch(peft, [BASE_ADAPTER, 'b', 'a', 'b']);
    // A broken head (NaN weights) spoils its own rows only: rows are selected, not masked by products.
    const head = peft.adapterStateDict('a').get('base_model.model.score.weight')!;
    noGrad(() => head.backend.fill(head.view('nan'), NaN));
    const out = noGrad(() =>
      scope(() =>
        peft.withAdapterNames(['a', 'b', BASE_ADAPTER, 'b'], () =>
          peft.model.forward({ inputIds: inputIds() }).toArray(),
        ),
      ),
    ) as Float32Array;
    const n = out.length / IDS.length;
    assert.ok(out.subarray(0, n).every(Number.isNaN));
    assert.ok(out.subarray(n).every(Number.isFinite));
  });

  test('heads in a mixed batch cost one pass: Linear heads as one batched GEMM, others on their own rows', () => {
    // Linear heads (Llama's score): no copy runs on the batch; rows are still their own adapter's.
    const lin = adapted('llama-seqcls', () =>
      veraConfig({ r: 8, target_modules: ['q_proj'], modules_to_save: ['score'], task_type: 'SEQ_CLS' }),
    );
    const rowsSeen = spyHeads(lin);
    assertRowsMatch(lin, ['b', 'a', BASE_ADAPTER, 'a']);
    assert.deepEqual(rowsSeen.mixed, [], 'no head copy ran on its own in the mixed batch');
    // RoBERTa's head (dense, tanh, out_proj) is no Linear: each copy runs once, on its own rows only.
    const rob = adapted('roberta-seqcls', () =>
      veraConfig({ r: 8, target_modules: ['query', 'value'], modules_to_save: ['classifier'], task_type: 'SEQ_CLS' }),
    );
    const seen = spyHeads(rob);
    assertRowsMatch(rob, ['a', BASE_ADAPTER, 'b', 'a']);
    assert.deepEqual(seen.mixed.sort(), ['a:2', 'b:1', 'original:1'], 'each head on its rows only: one pass in all');
  });

  test('LoRA (the generic masked path)', () => {
    const peft = adapted('llama-lm', () =>
      loraConfig({ r: 4, lora_alpha: 8, target_modules: ['q_proj', 'down_proj'] }),
    );
    assertRowsMatch(peft, ['b', BASE_ADAPTER, 'a', 'a']);
  });

  test('greedy generation with a mixed batch gives each row its own adapter’s tokens', () => {
    const peft = adapted('gpt2-lm', () => veraConfig({ r: 8, target_modules: ['c_attn'], projection_prng_key: 9 }));
    const prompts = [
      [5, 17, 3],
      [61, 2, 77, 13],
      [4, 4],
    ];
    const names = ['b', BASE_ADAPTER, 'a'];
    const opts = { maxNewTokens: 6, stopTokenIds: [] };
    const mixed = peft.withAdapterNames(names, () => generate(peft.model, prompts, opts));
    names.forEach((name, r) => {
      const run = () => generate(peft.model, [prompts[r]!], opts)[0];
      if (name === BASE_ADAPTER) assert.deepEqual(mixed[r], peft.disableAdapter(run), `row ${r}`);
      else {
        peft.setAdapter(name);
        assert.deepEqual(mixed[r], run(), `row ${r}`);
      }
    });
  });

  test('errors: unknown adapter, wrong row count, training mode, merged adapters', () => {
    const peft = adapted('gpt2-lm', () => veraConfig({ r: 4, target_modules: ['c_attn'] }));
    const forward = () => noGrad(() => scope(() => peft.model.forward({ inputIds: inputIds() })));
    assert.throws(
      () => peft.withAdapterNames(['a', 'c'], forward),
      /Adapter "c" not found; adapters: a, b \(or __base__\)/,
    );
    assert.throws(() => peft.withAdapterNames(['a', 'b'], forward), /2 adapter names were given for a batch of 4 rows/);
    peft.model.train();
    assert.throws(() => peft.withAdapterNames(['a', 'b', 'a', 'b'], forward), /for inference: call model.eval\(\)/);
    peft.model.eval();
    peft.setAdapter('a');
    peft.merge();
    assert.throws(() => peft.withAdapterNames(['a', 'b', 'a', 'b'], forward), /need unmerged adapters/);
    peft.unmerge();
    // Afterwards the layers are back to the active adapter.
    const rows = noGrad(() => scope(() => peft.withAdapterNames(['a', 'a', 'a', 'a'], () => forward().toArray())));
    assert.deepEqual(
      noGrad(() => scope(() => forward().toArray())),
      rows,
    );
  });
});
