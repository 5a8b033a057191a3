// Parity with PEFT 0.21 (fixtures written by test/parity/gen_adapters.py): every adapter PEFT saved on
// the tiny transformers models loads here and gives PEFT's logits adapted, merged and disabled within
// 1e-4 (absolute, plus 1e-4 relative); merged equals unmerged within 1e-5; VeRA projections (stored or
// regenerated from the seed, bf16-rounded for bf16 bases) are bit-identical; saving writes PEFT's keys.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { PeftModel, projectionValues } from '../../src/adapters/index.js';
import { AdapterLayer } from '../../src/adapters/layer.js';
import { noGrad } from '../../src/autograd/graph.js';
import { defaultBackend } from '../../src/backends/registry.js';
import { SafetensorsReader, writeSafetensors } from '../../src/io/safetensors.js';
import { vitKeyTo4x } from '../../src/models/vit/weights.js';
import { loadModel } from '../../src/models/auto.js';
import * as ops from '../../src/ops/index.js';
import type { ModelInputs } from '../../src/models/pretrained.js';
import { scope } from '../../src/tensor/scope.js';
import { caseDir, refInputs, refsOf } from '../models/fixtures.js';

const ADAPTERS = fileURLToPath(new URL('../../../test/parity/fixtures/adapters/', import.meta.url));
const manifest = JSON.parse(readFileSync(join(ADAPTERS, 'manifest.json'), 'utf8')) as {
  cases: { name: string; base: string; peft_type: string }[];
  projections: {
    seed: number;
    r: number;
    in: number;
    out: number;
    A_sha256: string;
    B_sha256: string;
    A_hex?: string;
    B_hex?: string;
  }[];
};

interface AdapterRefs {
  base: string;
  adapted: number[];
  disabled: number[];
  merged: number[];
  trainable_parameters: number;
  adapter_keys: string[];
  vera_A_sha256?: string;
  vera_B_sha256?: string;
}

const sha = (a: ArrayBufferView) =>
  createHash('sha256')
    .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    .digest('hex');

function worstError(got: number[], want: number[]): { i: number; err: number } {
  assert.equal(got.length, want.length);
  let worst = { i: -1, err: 0 };
  got.forEach((v, i) => {
    const err = Math.abs(v - want[i]!) - 1e-4 * Math.abs(want[i]!);
    if (!(err <= worst.err)) worst = { i, err };
  });
  return worst;
}

function assertLogits(got: number[], want: number[], what: string): void {
  const w = worstError(got, want);
  assert.ok(w.err <= 1e-4, `${what}: element ${w.i} is ${got[w.i]}, PEFT gives ${want[w.i]}`);
}

describe('PEFT adapters load and match PEFT', () => {
  for (const c of manifest.cases) {
    test(`${c.name} (${c.peft_type} on ${c.base})`, () => {
      const refs = JSON.parse(readFileSync(join(ADAPTERS, c.name, 'refs.json'), 'utf8')) as AdapterRefs;
      const backend = defaultBackend();
      const peft = PeftModel.fromPretrained(loadModel(caseDir(c.base), { backend }), join(ADAPTERS, c.name));
      const inputs = refInputs(refsOf(c.base), backend);
      const run = () => noGrad(() => scope(() => peft.forward(inputs as ModelInputs as never).toNumbers()));
      const adapted = run();
      assertLogits(adapted, refs.adapted, 'adapted logits');
      assertLogits(
        noGrad(() => peft.disableAdapter(run)),
        refs.disabled,
        'logits with the adapter disabled',
      );
      if (refs.vera_A_sha256) {
        const p = peft.projections()!;
        assert.equal(sha(p.A.toArray()), refs.vera_A_sha256, "vera_A differs from PEFT's");
        assert.equal(sha(p.B.toArray()), refs.vera_B_sha256, "vera_B differs from PEFT's");
      }
      // Saving writes exactly PEFT's keys (for seed-only VeRA, without the projections).
      const dir = mkdtempSync(join(tmpdir(), 'vera-peft-'));
      peft.savePretrained(dir);
      const r = SafetensorsReader.open(join(dir, 'adapter_model.safetensors'));
      assert.deepEqual(r.names().sort(), [...refs.adapter_keys].sort());
      r.close();
      peft.merge();
      const merged = run();
      assertLogits(merged, refs.merged, 'merged logits');
      assert.ok(
        Math.max(...merged.map((v, i) => Math.abs(v - adapted[i]!))) <= 1e-5 * (1 + Math.max(...adapted.map(Math.abs))),
        'merged differs from unmerged',
      );
      peft.unmerge();
      // Loaded as trainable, it counts PEFT's trainable parameters.
      const trainable = PeftModel.fromPretrained(loadModel(caseDir(c.base), { backend }), join(ADAPTERS, c.name), {
        isTrainable: true,
      });
      assert.equal(trainable.model.numParameters(true), refs.trainable_parameters);
    });
  }

  test("merging into bf16-stored weights gives PEFT's bf16 weights, merged and unmerged again, bit for bit", () => {
    const cases = manifest.cases.filter((c) => existsSync(join(ADAPTERS, c.name, 'merged-bf16.safetensors')));
    assert.ok(cases.length >= 2, 'the bf16 cases have merge references');
    for (const c of cases) {
      const backend = defaultBackend();
      const model = loadModel(caseDir(c.base), { backend, dtype: 'bf16' });
      const peft = PeftModel.fromPretrained(model, join(ADAPTERS, c.name));
      const ref = SafetensorsReader.open(join(ADAPTERS, c.name, 'merged-bf16.safetensors'));
      const layers = [...model.namedModules()].filter((e): e is [string, AdapterLayer] => e[1] instanceof AdapterLayer);
      assert.equal(layers.length * 2, ref.names().length);
      const check = (stage: 'merged' | 'unmerged') => {
        for (const [path, layer] of layers) {
          const w = layer.base_layer.weight;
          assert.equal(w.dtype, 'bf16', `${path} stays bf16`);
          // The file's bf16 values, widened exactly to f32 on reading, against ours widened the same way.
          const want = ref.tensor(`${stage}.${path}.weight`).toArray();
          assert.deepEqual(ops.cast(w, 'f32').toArray(), want, `${c.name} ${stage} ${path}`);
        }
      };
      const before = layers.map(([, l]) => ops.cast(l.base_layer.weight, 'f32').toArray());
      peft.merge();
      check('merged');
      peft.unmerge();
      check('unmerged');
      // bf16 merging is lossy, as in PEFT: unmerging does not give every original weight back.
      assert.ok(layers.some(([, l], i) => sha(ops.cast(l.base_layer.weight, 'f32').toArray()) !== sha(before[i]!)));
      ref.close();
    }
  });

  test('a ViT adapter written against transformers 4.x module names loads onto the same model', () => {
    const name = 'vit-vera-head';
    const refs = JSON.parse(readFileSync(join(ADAPTERS, name, 'refs.json'), 'utf8')) as AdapterRefs;
    const dir = mkdtempSync(join(tmpdir(), 'vera-vit4x-'));
    const src = SafetensorsReader.open(join(ADAPTERS, name, 'adapter_model.safetensors'));
    const renamed = new Map(
      src
        .names()
        .map((k) => [
          k.startsWith('base_model.model.') ? `base_model.model.${vitKeyTo4x(k.slice(17))}` : k,
          src.tensor(k),
        ]),
    );
    src.close();
    assert.ok([...renamed.keys()].some((k) => k.includes('encoder.layer.0.attention.attention.query.vera_lambda_b')));
    writeSafetensors(join(dir, 'adapter_model.safetensors'), renamed, { format: 'pt' });
    const config = JSON.parse(readFileSync(join(ADAPTERS, name, 'adapter_config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...config, target_modules: ['query', 'value'] }));
    const backend = defaultBackend();
    const peft = PeftModel.fromPretrained(loadModel(caseDir('vit-imgcls'), { backend }), dir);
    const got = noGrad(() => scope(() => peft.forward(refInputs(refsOf('vit-imgcls'), backend) as never).toNumbers()));
    assertLogits(got, refs.adapted, 'adapted logits (4.x names)');
  });

  test('VeRA projections are bit-identical to torch for several (seed, r, in, out)', () => {
    for (const p of manifest.projections) {
      const { a, b } = projectionValues(p.seed, p.r, p.in, p.out);
      const what = `seed ${p.seed}, r ${p.r}, in ${p.in}, out ${p.out}`;
      assert.equal(sha(a), p.A_sha256, `vera_A for ${what}`);
      assert.equal(sha(b), p.B_sha256, `vera_B for ${what}`);
      if (p.A_hex) assert.equal(Buffer.from(a.buffer).toString('hex'), p.A_hex);
    }
  });
});
