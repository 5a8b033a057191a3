// Adapter behaviour on a small MLP, as PEFT's own tests check it (test_vera.py, test_custom_models.py):
// projections and parameter counts, identity at init, forward = formula, merge = unmerged, save/load
// round trips in PEFT's layout, multiple adapters, training touches only adapter tensors, and bad
// adapter files fail with the key named and the model untouched.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  AdapterError,
  PeftModel,
  VeraLinear,
  getPeftModel,
  loraConfig,
  projectionValues,
  veraConfig,
} from '../../src/adapters/index.js';
import { backward } from '../../src/autograd/backward.js';
import { noGrad } from '../../src/autograd/graph.js';
import { SafetensorsReader, writeSafetensors } from '../../src/io/safetensors.js';
import { Linear } from '../../src/nn/layers.js';
import { Module } from '../../src/nn/module.js';
import * as ops from '../../src/ops/index.js';
import { AdamW } from '../../src/optim/adamw.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';

class MLP extends Module {
  lin0: Linear;
  lin1: Linear;
  lin2: Linear;
  constructor(seed = 0) {
    super();
    const g = new Generator(seed);
    this.lin0 = new Linear(10, 20, { generator: g });
    this.lin1 = new Linear(20, 30, { generator: g });
    this.lin2 = new Linear(30, 2, { generator: g });
    for (const p of this.parameters()) p.requiresGrad = false;
  }
  forward(x: Tensor): Tensor {
    return this.lin2.forward(ops.relu(this.lin1.forward(ops.relu(this.lin0.forward(x)))));
  }
}

const x = () => tensor(new Generator(9).uniform(4 * 10, -1, 1), { shape: [4, 10] });
const vals = (t: Tensor) => t.toNumbers();
const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
const tmp = () => mkdtempSync(join(tmpdir(), 'vera-adapters-'));

/** Gives every λ a non-trivial value (an identity adapter tests nothing). */
function randomizeLambdas(peft: PeftModel, seed: number): void {
  const g = new Generator(seed);
  noGrad(() => {
    for (const [name, t] of peft.trainableParameters()) {
      const v = tensor(g.uniform(t.numel, -1, 1), { shape: t.shape });
      t.backend.copy(t.view(name), v.view(name));
    }
  });
}

describe('VeRA', () => {
  test("projections are PEFT's: (r, max_in) and (max_out, r), bit-exact; trainable = Σ(out + r)", () => {
    const peft = getPeftModel(new MLP(), veraConfig({ r: 4, target_modules: ['lin0', 'lin1', 'lin2'] }));
    const sd = peft.adapterStateDict();
    const a = sd.get('base_model.vera_A')!;
    const b = sd.get('base_model.vera_B')!;
    assert.deepEqual(a.shape, [4, 30]);
    assert.deepEqual(b.shape, [30, 4]);
    const ref = projectionValues(0, 4, 30, 30);
    assert.deepEqual(a.toArray(), ref.a);
    assert.deepEqual(b.toArray(), ref.b);
    assert.equal(
      peft.trainableParameters().reduce((n, [, t]) => n + t.numel, 0),
      24 + 34 + 6,
    );
    assert.match(
      peft.trainableParametersSummary(),
      /^trainable params: 64 \|\| all params: 976 \|\| trainable%: 6\.5574$/,
    );
  });

  test('an adapter is the identity at init and its forward follows the formula', () => {
    const base = new MLP();
    const input = x();
    const before = vals(noGrad(() => base.forward(input)));
    const peft = getPeftModel(base, veraConfig({ r: 4, target_modules: ['lin1'] }));
    assert.deepEqual(vals(noGrad(() => peft.forward(input as never))), before);
    randomizeLambdas(peft, 1);
    const layer = base.lin1 as unknown as VeraLinear;
    assert.ok(layer instanceof VeraLinear);
    const h = noGrad(() => ops.relu(base.lin0.forward(input)));
    const [lb, ld] = [layer.vera_lambda_b.get('default')!, layer.vera_lambda_d.get('default')!];
    const sd = peft.adapterStateDict();
    const manual = noGrad(() => {
      const as = ops.slice(sd.get('base_model.vera_A')!, 1, 0, 20);
      const bs = ops.slice(sd.get('base_model.vera_B')!, 0, 0, 30);
      return ops.add(layer.base_layer.forward(h), ops.mul(ops.linear(ops.mul(ops.linear(h, as), ld), bs), lb));
    });
    assert.ok(maxDiff(vals(noGrad(() => layer.forward(h))), vals(manual)) < 1e-6);
  });

  test('merge gives the unmerged output; unmerge restores the base weights; disableAdapter gives the base', () => {
    const base = new MLP();
    const input = x();
    const plain = vals(noGrad(() => base.forward(input)));
    const w0 = vals(base.lin0.weight);
    const peft = getPeftModel(base, veraConfig({ r: 4, target_modules: ['lin0', 'lin1', 'lin2'] }));
    randomizeLambdas(peft, 2);
    const adapted = vals(noGrad(() => peft.forward(input as never)));
    assert.ok(maxDiff(adapted, plain) > 1e-3);
    assert.deepEqual(vals(noGrad(() => peft.disableAdapter(() => peft.forward(input as never)))), plain);
    peft.merge();
    assert.ok(maxDiff(vals(noGrad(() => peft.forward(input as never))), adapted) < 1e-5);
    peft.unmerge();
    assert.ok(maxDiff(vals((base.lin0 as unknown as VeraLinear).base_layer.weight), w0) < 1e-6);
    const merged = peft.mergeAndUnload() as MLP;
    assert.ok(merged.lin0 instanceof Linear && !(merged.lin0 instanceof VeraLinear));
    assert.ok(maxDiff(vals(noGrad(() => merged.forward(input))), adapted) < 1e-5);
  });

  test("savePretrained writes PEFT's keys and config; fromPretrained restores the same outputs", () => {
    const dir = tmp();
    const peft = getPeftModel(
      new MLP(),
      veraConfig({ r: 4, target_modules: ['lin0', 'lin2'], projection_prng_key: 7 }),
    );
    randomizeLambdas(peft, 3);
    const input = x();
    const expected = vals(noGrad(() => peft.forward(input as never)));
    peft.savePretrained(dir);
    const reader = SafetensorsReader.open(join(dir, 'adapter_model.safetensors'));
    assert.deepEqual(reader.names().sort(), [
      'base_model.model.lin0.vera_lambda_b',
      'base_model.model.lin0.vera_lambda_d',
      'base_model.model.lin2.vera_lambda_b',
      'base_model.model.lin2.vera_lambda_d',
      'base_model.vera_A',
      'base_model.vera_B',
    ]);
    assert.deepEqual(reader.metadata, { format: 'pt' });
    assert.deepEqual(reader.info('base_model.vera_A').shape, [4, 30]); // max_in: lin2 reads 30
    assert.deepEqual(reader.info('base_model.vera_B').shape, [20, 4]); // max_out: lin0 writes 20
    reader.close();
    const config = readFileSync(join(dir, 'adapter_config.json'), 'utf8');
    assert.match(
      config,
      /^\{\n {2}"auto_mapping": null,\n {2}"base_model_name_or_path": null,\n {2}"bias": "none",\n {2}"d_initial": 0\.1,/,
    );
    assert.match(config, /"vera_dropout": 0\.0\n\}$/);
    const loaded = PeftModel.fromPretrained(new MLP(), dir);
    assert.deepEqual(vals(noGrad(() => loaded.forward(input as never))), expected);
    assert.equal(loaded.trainableParameters().length, 0);
  });

  test('save_projection=false writes no projections and regenerates them from the seed', () => {
    const dir = tmp();
    const peft = getPeftModel(
      new MLP(),
      veraConfig({ r: 4, target_modules: ['lin1'], save_projection: false, projection_prng_key: 11 }),
    );
    randomizeLambdas(peft, 4);
    const input = x();
    const expected = vals(noGrad(() => peft.forward(input as never)));
    peft.savePretrained(dir);
    const reader = SafetensorsReader.open(join(dir, 'adapter_model.safetensors'));
    assert.equal(reader.has('base_model.vera_A'), false);
    reader.close();
    assert.deepEqual(vals(noGrad(() => PeftModel.fromPretrained(new MLP(), dir).forward(input as never))), expected);
  });

  test('adapters share one projection pair; seeds and save_projection must agree', () => {
    const peft = getPeftModel(new MLP(), veraConfig({ r: 4, target_modules: ['lin0', 'lin1'] }));
    peft.addAdapter('other', veraConfig({ r: 4, target_modules: ['lin1'] }));
    const layer = peft.model.namedModules().find(([p]) => p === 'lin1')![1] as VeraLinear;
    assert.deepEqual(layer.adapterNames(), ['default', 'other']);
    assert.equal(
      peft.adapterStateDict('default').get('base_model.vera_A'),
      peft.adapterStateDict('other').get('base_model.vera_A'),
    );
    assert.throws(
      () => peft.addAdapter('bad-seed', veraConfig({ r: 4, target_modules: ['lin1'], projection_prng_key: 1 })),
      /PRNG initialisation key must be the same/,
    );
    assert.throws(
      () => peft.addAdapter('bad-save', veraConfig({ r: 4, target_modules: ['lin1'], save_projection: false })),
      /must be saved for all adapters or none/,
    );
    for (const r of [2, 8])
      assert.throws(
        () => peft.addAdapter(`r${r}`, veraConfig({ r, target_modules: ['lin1'] })),
        new RegExp(`adapter "r${r}" has r=${r}, but this model's shared projections have r=4 .* must share r`),
      );
    assert.throws(
      () => peft.addAdapter('too-wide', veraConfig({ r: 4, target_modules: ['lin2'] })),
      /vera_A has a size of 20 but 30 or greater is required/,
    );
    randomizeLambdas(peft, 5);
    const input = x();
    const a = vals(noGrad(() => peft.forward(input as never)));
    peft.setAdapter('other');
    const b = vals(noGrad(() => peft.forward(input as never)));
    assert.ok(maxDiff(a, b) > 1e-4);
    // Saved as PEFT lays out several adapters: "default" in dir, others in dir/<name>/.
    const dir = tmp();
    peft.savePretrained(dir);
    const again = PeftModel.fromPretrained(new MLP(), dir);
    again.loadAdapter(join(dir, 'other'), 'other');
    again.setAdapter('other');
    assert.deepEqual(vals(noGrad(() => again.forward(input as never))), b);
    peft.deleteAdapter('other');
    assert.equal(peft.activeAdapter, 'default');
    assert.deepEqual(vals(noGrad(() => peft.forward(input as never))), a);
  });

  test('a training step changes only the λ vectors', () => {
    const base = new MLP();
    const peft = getPeftModel(base, veraConfig({ r: 4, target_modules: ['lin0', 'lin1'] }));
    const frozen = base
      .parameters()
      .filter((p) => !p.requiresGrad)
      .map((p) => [p, vals(p)] as const);
    const trainable = peft.trainableParameters();
    assert.deepEqual(
      trainable.map(([n]) => n),
      [
        'base_model.model.lin0.vera_lambda_b.default',
        'base_model.model.lin0.vera_lambda_d.default',
        'base_model.model.lin1.vera_lambda_b.default',
        'base_model.model.lin1.vera_lambda_d.default',
      ],
    );
    const opt = new AdamW(
      trainable.map(([, t]) => t),
      { lr: 0.1 },
    );
    const y = tensor([0, 1, 1, 0], { dtype: 'i32' });
    for (let i = 0; i < 3; i++) {
      backward(ops.crossEntropy(peft.forward(x() as never), y));
      opt.step();
      opt.zeroGrad();
    }
    for (const [p, v] of frozen) assert.deepEqual(vals(p), v);
    assert.ok(trainable.every(([, t]) => t.toNumbers().some((v) => v !== 0 && Math.abs(v - Math.fround(0.1)) > 1e-9)));
  });

  test('a bad adapter file fails naming the key, and leaves the model untouched', () => {
    const dir = tmp();
    const peft = getPeftModel(new MLP(), veraConfig({ r: 4, target_modules: ['lin0', 'lin1'] }));
    peft.savePretrained(dir);
    const weights = join(dir, 'adapter_model.safetensors');
    const original = readFileSync(weights);
    const edit = (mutate: (m: Map<string, Tensor>) => void) => {
      const r = SafetensorsReader.open(weights);
      const m = new Map(r.names().map((k) => [k, r.tensor(k)]));
      r.close();
      mutate(m);
      writeSafetensors(weights, m, { format: 'pt' });
    };
    const check = (re: RegExp) => {
      const model = new MLP();
      assert.throws(
        () => PeftModel.fromPretrained(model, dir),
        (e: unknown) => e instanceof AdapterError && re.test(e.message),
      );
      assert.ok(model.lin0 instanceof Linear && !(model.lin0 instanceof VeraLinear), 'model was modified');
      assert.equal(model.namedParameters().length, 6);
      writeFileSync(weights, original);
    };
    edit((m) => m.delete('base_model.model.lin1.vera_lambda_d'));
    check(/missing key "base_model\.model\.lin1\.vera_lambda_d"/);
    edit((m) => m.set('base_model.model.lin9.vera_lambda_b', tensor([1])));
    check(/unexpected key "base_model\.model\.lin9\.vera_lambda_b"/);
    edit((m) => m.set('base_model.model.lin0.vera_lambda_d', tensor([1, 2, 3])));
    check(/"base_model\.model\.lin0\.vera_lambda_d" has shape \(3\) but the model needs \(4\).*r match/);
    edit((m) => m.delete('base_model.vera_A'));
    check(/missing key "base_model\.vera_A".*save_projection/);
    const cfgPath = join(dir, 'adapter_config.json');
    const cfg = readFileSync(cfgPath, 'utf8');
    writeFileSync(cfgPath, cfg.replace('"VERA"', '"IA3"'));
    assert.throws(() => PeftModel.fromPretrained(new MLP(), dir), /unknown peft_type "IA3"/);
    writeFileSync(cfgPath, cfg.replace('"lin0"', '"nothing_here"').replace('"lin1"', '"nor_here"'));
    assert.throws(() => PeftModel.fromPretrained(new MLP(), dir), /No layers types compatible.*lin0, lin1, lin2/);
    writeFileSync(cfgPath, cfg);
    writeFileSync(weights, original.subarray(0, 20));
    assert.throws(() => PeftModel.fromPretrained(new MLP(), dir), /adapter_model\.safetensors/);
    writeFileSync(weights, original);
    assert.ok(PeftModel.fromPretrained(new MLP(), dir));
  });

  test('target_modules as a regex, layers_to_transform and modules_to_save', () => {
    class Stack extends Module {
      layers = [new MLP(1), new MLP(2), new MLP(3)];
      forward(t: Tensor): Tensor {
        return this.layers[2]!.forward(t);
      }
    }
    // HF-like paths ("model.layers.1.lin0"): PEFT's layer-index regex needs a dotted prefix.
    class Net extends Module {
      model = new Stack();
      head = new Linear(2, 2, { generator: new Generator(4) });
      forward(t: Tensor): Tensor {
        return this.head.forward(this.model.forward(t));
      }
    }
    const adapted = (p: PeftModel) =>
      p.model
        .namedModules()
        .filter(([, m]) => m instanceof VeraLinear)
        .map(([path]) => path);
    const regex = getPeftModel(new Net(), veraConfig({ r: 2, target_modules: String.raw`model\.layers\.[02]\.lin1` }));
    assert.deepEqual(adapted(regex), ['model.layers.0.lin1', 'model.layers.2.lin1']);
    const byLayer = getPeftModel(
      new Net(),
      veraConfig({ r: 2, target_modules: ['lin0'], layers_to_transform: [1], modules_to_save: ['head'] }),
    );
    assert.deepEqual(adapted(byLayer), ['model.layers.1.lin0']);
    assert.deepEqual(
      [...byLayer.adapterStateDict().keys()].filter((k) => k.includes('head')),
      ['base_model.model.head.weight', 'base_model.model.head.bias'],
    );
    assert.ok(
      byLayer.trainableParameters().some(([n]) => n === 'base_model.model.head.modules_to_save.default.weight'),
    );
    const pattern = getPeftModel(
      new Net(),
      veraConfig({ r: 2, target_modules: ['lin2'], layers_to_transform: 2, layers_pattern: 'layers' }),
    );
    assert.deepEqual(adapted(pattern), ['model.layers.2.lin2']);
  });
});

describe('VeRA options', () => {
  test("projectionFma: false draws torch's non-FMA projections", () => {
    const fma = getPeftModel(new MLP(), veraConfig({ r: 4, target_modules: ['lin1'] }));
    const plain = getPeftModel(new MLP(), veraConfig({ r: 4, target_modules: ['lin1'] }), { projectionFma: false });
    assert.deepEqual(plain.projections()!.A.toArray(), projectionValues(0, 4, 20, 30, { fma: false }).a);
    assert.notDeepEqual(plain.projections()!.A.toArray(), fma.projections()!.A.toArray());
  });

  test('train/eval mode: new layers take the wrapped layer’s; fromPretrained for inference sets eval', () => {
    const modes = (m: Module) => [...m.namedModules()].map(([, x]) => x.training);
    const config = veraConfig({ r: 2, target_modules: ['lin0', 'lin1'], vera_dropout: 0.5 });
    const inEval = getPeftModel(new MLP().eval(), config);
    assert.ok(
      modes(inEval.model).every((t) => !t),
      'no dropout in an eval-mode model',
    );
    const input = x();
    randomizeLambdas(inEval, 1);
    assert.deepEqual(vals(noGrad(() => inEval.forward(input))), vals(noGrad(() => inEval.forward(input))));
    assert.ok(modes(getPeftModel(new MLP(), config).model).every((t) => t));
    const dir = tmp();
    inEval.savePretrained(dir);
    assert.ok(
      modes(PeftModel.fromPretrained(new MLP(), dir).model).every((t) => !t),
      'PEFT: eval() unless trainable',
    );
    assert.ok(modes(PeftModel.fromPretrained(new MLP(), dir, { isTrainable: true }).model).every((t) => t));
  });

  test('unknown adapter_config.json keys are tolerated', () => {
    const dir = tmp();
    getPeftModel(new MLP(), veraConfig({ r: 2, target_modules: ['lin0'] })).savePretrained(dir);
    const cfgPath = join(dir, 'adapter_config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, some_future_field: { x: 1 }, peft_version: '9.9.9' }));
    assert.equal(PeftModel.fromPretrained(new MLP(), dir).peftConfig.get('default')!.r, 2);
  });

  test('bias="all" trains and saves every bias; a second adapter with a bias is refused', () => {
    const dir = tmp();
    const peft = getPeftModel(new MLP(), veraConfig({ r: 2, target_modules: ['lin0'], bias: 'all' }));
    const names = peft.trainableParameters().map(([n]) => n);
    assert.ok(names.includes('base_model.model.lin0.base_layer.bias') && names.includes('base_model.model.lin2.bias'));
    randomizeLambdas(peft, 7);
    const input = x();
    const expected = vals(noGrad(() => peft.forward(input as never)));
    peft.savePretrained(dir);
    const r = SafetensorsReader.open(join(dir, 'adapter_model.safetensors'));
    assert.deepEqual(
      r
        .names()
        .filter((k) => k.endsWith('bias'))
        .sort(),
      ['base_model.model.lin0.base_layer.bias', 'base_model.model.lin1.bias', 'base_model.model.lin2.bias'],
    );
    r.close();
    assert.deepEqual(vals(noGrad(() => PeftModel.fromPretrained(new MLP(), dir).forward(input as never))), expected);
    assert.throws(
      () => peft.addAdapter('b2', veraConfig({ r: 2, target_modules: ['lin0'], bias: 'all' })),
      /only 1 adapter with bias/,
    );
  });
});

describe('LoRA', () => {
  test('forward = base + scaling·B·A·x, merged = unmerged, rsLoRA scaling, save/load round trip', () => {
    const base = new MLP();
    const input = x();
    const peft = getPeftModel(
      base,
      loraConfig({ r: 4, lora_alpha: 8, target_modules: ['lin0', 'lin1'], use_rslora: true }),
    );
    assert.deepEqual(
      vals(noGrad(() => peft.forward(input as never))),
      vals(noGrad(() => peft.disableAdapter(() => peft.forward(input as never)))),
    );
    randomizeLambdas(peft, 6);
    const adapted = vals(noGrad(() => peft.forward(input as never)));
    const dir = tmp();
    peft.savePretrained(dir);
    const r = SafetensorsReader.open(join(dir, 'adapter_model.safetensors'));
    assert.deepEqual(r.names().sort(), [
      'base_model.model.lin0.lora_A.weight',
      'base_model.model.lin0.lora_B.weight',
      'base_model.model.lin1.lora_A.weight',
      'base_model.model.lin1.lora_B.weight',
    ]);
    r.close();
    const layer = base.lin0 as unknown as { scaling: Map<string, number> };
    assert.equal(layer.scaling.get('default'), 8 / 2);
    peft.merge();
    assert.ok(maxDiff(vals(noGrad(() => peft.forward(input as never))), adapted) < 1e-5);
    const loaded = PeftModel.fromPretrained(new MLP(), dir);
    assert.ok(maxDiff(vals(noGrad(() => loaded.forward(input as never))), adapted) < 1e-6);
    assert.match(readFileSync(join(dir, 'adapter_config.json'), 'utf8'), /"use_rslora": true/);
  });

  test('unsupported LoRA variants are refused with the field named', () => {
    const dir = tmp();
    getPeftModel(new MLP(), loraConfig({ r: 2, target_modules: ['lin0'] })).savePretrained(dir);
    const cfgPath = join(dir, 'adapter_config.json');
    writeFileSync(cfgPath, readFileSync(cfgPath, 'utf8').replace('"use_dora": false', '"use_dora": true'));
    assert.throws(() => PeftModel.fromPretrained(new MLP(), dir), /"use_dora": true is not supported/);
  });
});
