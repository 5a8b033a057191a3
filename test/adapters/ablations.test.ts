// The VeRA paper's ablations (VeraConfig.experimental, vera-ts only): a fixed λ keeps its value through
// training and is saved like a trained one, the projections' other initialisations draw the right
// distributions, and a config at its defaults saves exactly the files it saved before (PEFT's).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { PeftModel, getPeftModel } from '../../src/adapters/peft-model.js';
import {
  EXPERIMENTAL_KEY,
  type VeraConfig,
  type VeraExperimental,
  veraConfig,
} from '../../src/adapters/vera/config.js';
import { projectionValues } from '../../src/adapters/vera/projections.js';
import { backward } from '../../src/autograd/backward.js';
import { noGrad } from '../../src/autograd/graph.js';
import { SafetensorsReader } from '../../src/io/safetensors.js';
import { Linear } from '../../src/nn/layers.js';
import { Module } from '../../src/nn/module.js';
import * as ops from '../../src/ops/index.js';
import { AdamW } from '../../src/optim/adamw.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { ConfigError, resolveConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { BIN, fixtureModel, keywordCsv, quietSink, runConfig, scratch } from '../train/helpers.js';

class MLP extends Module {
  lin0: Linear;
  lin1: Linear;
  constructor() {
    super();
    const g = new Generator(0);
    this.lin0 = new Linear(10, 20, { generator: g });
    this.lin1 = new Linear(20, 2, { generator: g });
    for (const p of this.parameters()) p.requiresGrad = false;
  }
  forward(x: Tensor): Tensor {
    return this.lin1.forward(ops.relu(this.lin0.forward(x)));
  }
}

const x = () => tensor(new Generator(9).uniform(4 * 10, -1, 1), { shape: [4, 10] });
const tmp = () => mkdtempSync(join(tmpdir(), 'vera-ablations-'));
const lambdas = (peft: PeftModel, which: 'b' | 'd') =>
  [...peft.adapterStateDict()].filter(([k]) => k.endsWith(`vera_lambda_${which}`)).map(([, t]) => t);

/** Values of the λ vectors that do not require grad. */
const frozenValues = (peft: PeftModel) =>
  [...lambdas(peft, 'b'), ...lambdas(peft, 'd')].filter((t) => !t.requiresGrad).reduce((n, t) => n + t.numel, 0);

/** A VeRA MLP with `experimental`, and how many λ values getPeftModel left frozen. */
function adapted(experimental?: VeraExperimental, extra: Parameters<typeof veraConfig>[0] = {}) {
  const peft = getPeftModel(
    new MLP(),
    veraConfig({ r: 4, target_modules: ['lin0', 'lin1'], ...(experimental ? { experimental } : {}), ...extra }),
  );
  return { peft, frozen: frozenValues(peft) };
}

/** Three AdamW steps (with weight decay, which must not touch a fixed λ either). */
function trainSteps(peft: PeftModel): void {
  const params = peft.trainableParameters().map(([, t]) => t);
  const opt = new AdamW(params, { lr: 0.1, weightDecay: 0.1 });
  const y = tensor([0, 1, 1, 0], { dtype: 'i32' });
  for (let i = 0; i < 3; i++) {
    backward(ops.crossEntropy(peft.forward(x() as never), y));
    opt.step();
    opt.zeroGrad();
  }
}

describe('VeRA ablations', () => {
  test('"only d": λ_b is fixed at ones, not trained, and saved; λ_d trains', () => {
    const { peft, frozen } = adapted({ train_b: false });
    assert.equal(frozen, 20 + 2);
    assert.deepEqual(
      peft.trainableParameters().map(([n]) => n),
      ['base_model.model.lin0.vera_lambda_d.default', 'base_model.model.lin1.vera_lambda_d.default'],
    );
    trainSteps(peft);
    for (const b of lambdas(peft, 'b')) assert.ok(b.toNumbers().every((v) => v === 1));
    for (const d of lambdas(peft, 'd')) assert.ok(d.toNumbers().some((v) => v !== Math.fround(0.1)));
    // The file holds the fixed vector too, so PEFT (which ignores the experimental key) computes the same.
    const dir = tmp();
    peft.savePretrained(dir);
    const reader = SafetensorsReader.open(join(dir, 'adapter_model.safetensors'));
    assert.ok(
      reader
        .tensor('base_model.model.lin0.vera_lambda_b')
        .toNumbers()
        .every((v) => v === 1),
    );
    reader.close();
    const json = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(json[EXPERIMENTAL_KEY], {
      fixed_value: 1,
      projection_init: 'kaiming_uniform',
      train_b: false,
      train_d: true,
    });
    // vera inspect counts only what trains: λ_d (2 layers × r 4), not the fixed λ_b.
    const inspect = spawnSync(process.execPath, [BIN, 'inspect', dir, '--json'], { encoding: 'utf8' });
    assert.equal(inspect.status, 0, inspect.stderr);
    assert.equal((JSON.parse(inspect.stdout) as { trainable_parameters: number }).trainable_parameters, 2 * 4);
    const loaded = PeftModel.fromPretrained(new MLP(), dir);
    assert.equal((loaded.peftConfig.get('default') as VeraConfig).experimental?.train_b, false);
    // Loaded to train further, the fixed λ stays frozen.
    assert.equal(frozenValues(PeftModel.fromPretrained(new MLP(), dir, { isTrainable: true })), 20 + 2);
    const input = x();
    assert.deepEqual(
      noGrad(() => loaded.forward(input as never)).toNumbers(),
      noGrad(() => peft.forward(input as never)).toNumbers(),
    );
  });

  test('"only b": λ_d is fixed at ones (fixed_value), λ_b trains from 0', () => {
    const { peft, frozen } = adapted({ train_d: false });
    assert.equal(frozen, 2 * 4);
    for (const b of lambdas(peft, 'b')) assert.ok(b.toNumbers().every((v) => v === 0));
    trainSteps(peft);
    for (const d of lambdas(peft, 'd')) assert.ok(d.toNumbers().every((v) => v === 1));
    for (const b of lambdas(peft, 'b')) assert.ok(b.toNumbers().some((v) => v !== 0));
    const other = adapted({ train_d: false, fixed_value: 0.5 }).peft;
    for (const d of lambdas(other, 'd')) assert.ok(d.toNumbers().every((v) => v === 0.5));
  });

  test('the projections draw Kaiming uniform (default, unchanged), Kaiming normal and U(0, 0.1)', () => {
    const [r, maxIn, maxOut] = [64, 256, 128];
    const stats = (v: Float32Array) => {
      const mean = v.reduce((s, x) => s + x, 0) / v.length;
      const std = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
      return { mean, std, min: Math.min(...v), max: Math.max(...v) };
    };
    const def = projectionValues(3, r, maxIn, maxOut);
    const ku = projectionValues(3, r, maxIn, maxOut, { init: 'kaiming_uniform' });
    assert.deepEqual(ku.a, def.a);
    assert.deepEqual(ku.b, def.b);
    const kn = projectionValues(3, r, maxIn, maxOut, { init: 'kaiming_normal' });
    for (const [v, fan] of [
      [kn.a, maxIn],
      [kn.b, r],
    ] as const) {
      const s = stats(v);
      const std = Math.SQRT2 / Math.sqrt(fan);
      assert.ok(Math.abs(s.mean) < 0.05 * std, `mean ${s.mean}`);
      assert.ok(Math.abs(s.std / std - 1) < 0.05, `std ${s.std} vs ${std}`);
      // A normal reaches past the uniform's bound √3·std (about 8% of draws); a uniform never does.
      assert.ok(s.max > Math.sqrt(3) * std && s.min < -Math.sqrt(3) * std);
    }
    const u = projectionValues(3, r, maxIn, maxOut, { init: 'uniform_0_0.1' });
    for (const v of [u.a, u.b]) {
      const s = stats(v);
      assert.ok(s.min >= 0 && s.max <= 0.1, `${s.min}..${s.max}`);
      assert.ok(Math.abs(s.mean - 0.05) < 0.002, `mean ${s.mean}`);
      assert.ok(Math.abs(s.std - 0.1 / Math.sqrt(12)) < 0.002, `std ${s.std}`);
    }
    // The model uses them, and saves them (PEFT could not regenerate them from the seed).
    const { peft } = adapted({ projection_init: 'uniform_0_0.1' });
    assert.ok(
      peft
        .projections()!
        .A.toNumbers()
        .every((v) => v >= 0 && v <= 0.1),
    );
    assert.throws(
      () => veraConfig({ save_projection: false, experimental: { projection_init: 'kaiming_normal' } }),
      /needs save_projection=true/,
    );
    assert.throws(
      () => peft.addAdapter('other', veraConfig({ r: 4, target_modules: ['lin1'] })),
      /projection_init must be the same for all adapters/,
    );
  });

  test('a config at the defaults saves the same bytes as one without experimental (no extra key)', () => {
    const files = (experimental?: VeraExperimental) => {
      const dir = tmp();
      adapted(experimental).peft.savePretrained(dir);
      return ['adapter_config.json', 'adapter_model.safetensors'].map((f) => readFileSync(join(dir, f)));
    };
    const plain = files();
    assert.ok(!plain[0]!.toString('utf8').includes(EXPERIMENTAL_KEY));
    for (const e of [{}, { train_b: true, train_d: true, fixed_value: 1, projection_init: 'kaiming_uniform' as const }])
      assert.deepEqual(files(e), plain);
    assert.equal(adapted().frozen, 0);
    assert.throws(
      () => veraConfig({ experimental: { train_c: true } as never }),
      /experimental\.train_c is not an option/,
    );
  });

  test('the trainer passes --vera_train_b/--vera_train_d/--vera_projection_init through', async () => {
    const { dir, cleanup } = scratch('ablations');
    try {
      const model = fixtureModel(dir, 'gpt2-lm');
      const data = keywordCsv(join(dir, 'data.csv'), 64);
      const run = async (name: string, fields: Parameters<typeof runConfig>[0]) => {
        const out = join(dir, name);
        const result = await train({
          config: runConfig({
            model,
            train_file: data,
            output_dir: out,
            method: 'vera',
            r: 4,
            max_steps: 2,
            ...fields,
          }),
          sink: quietSink(),
        });
        const config = JSON.parse(readFileSync(join(out, 'adapter', 'adapter_config.json'), 'utf8')) as Record<
          string,
          unknown
        >;
        return { result, config, out };
      };
      const plain = await run('plain', {});
      assert.equal(plain.config[EXPERIMENTAL_KEY], undefined);
      const onlyD = await run('only-d', { vera_train_b: false });
      assert.deepEqual(onlyD.config[EXPERIMENTAL_KEY], {
        fixed_value: 1,
        projection_init: 'kaiming_uniform',
        train_b: false,
        train_d: true,
      });
      const reader = SafetensorsReader.open(join(onlyD.out, 'adapter', 'adapter_model.safetensors'));
      const bs = reader.names().filter((k) => k.endsWith('vera_lambda_b'));
      assert.ok(bs.length > 0);
      let outs = 0;
      for (const k of bs) {
        const v = reader.tensor(k).toNumbers();
        outs += v.length;
        assert.ok(
          v.every((x) => x === 1),
          k,
        );
      }
      reader.close();
      assert.equal(plain.result.trainableParameters - onlyD.result.trainableParameters, outs);
      const normal = await run('normal', { vera_projection_init: 'kaiming_normal' });
      assert.equal((normal.config[EXPERIMENTAL_KEY] as Record<string, unknown>)['projection_init'], 'kaiming_normal');
      assert.throws(
        () =>
          resolveConfig({
            model,
            train_file: data,
            output_dir: dir,
            vera_projection_init: 'uniform_0_0.1',
            save_projection: false,
          }),
        (e: unknown) => e instanceof ConfigError && /needs --save_projection/.test(e.message),
      );
    } finally {
      cleanup();
    }
  });
});
