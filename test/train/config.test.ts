// The run config: flags in either spelling, booleans, lists, file then flags precedence, defaults,
// and errors that name the flag or the file and field; and the learning-rate schedules' values.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { FIELDS, parseFlags, readConfigFile, resolveConfig, trainUsage } from '../../src/train/config.js';
import { lrFactor, warmupSteps } from '../../src/train/schedule.js';
import { scratch } from './helpers.js';

const { dir, cleanup } = scratch('config');
after(() => cleanup());

describe('run config', () => {
  test('flags: --a_b and --a-b, values inline or next, booleans, negation, lists', () => {
    const { given, config } = parseFlags([
      '--model=m',
      '--train-file',
      'd.csv',
      '--head_lr',
      '2e-3',
      '--resume',
      '--no-save-projection',
      '--target_modules',
      'c_attn, c_proj',
      '--label_names',
      '["a","b,c"]',
      '--config',
      'run.json',
      '--bucket_by_length',
      'false',
      '--r',
      '16',
    ]);
    assert.equal(config, 'run.json');
    assert.deepEqual(given, {
      model: 'm',
      train_file: 'd.csv',
      head_lr: 2e-3,
      resume: true,
      save_projection: false,
      target_modules: ['c_attn', 'c_proj'],
      label_names: ['a', 'b,c'],
      bucket_by_length: false,
      r: 16,
    });
  });

  test('defaults, then the file, then the flags', () => {
    const file = join(dir, 'run.json');
    writeFileSync(file, JSON.stringify({ model: 'm', train_file: 'd.csv', output_dir: 'o', lr: 0.01, epochs: 2 }));
    const c = resolveConfig(readConfigFile(file), parseFlags(['--lr', '0.02']).given);
    assert.equal(c.lr, 0.02);
    assert.equal(c.epochs, 2);
    assert.equal(c.method, 'vera');
    assert.equal(c.max_grad_norm, 1);
    assert.equal(c.gradient_accumulation_steps, 1);
    assert.equal(c.seed, 42);
    assert.equal(c.head_lr, null);
  });

  test('errors name the flag, or the file and field', () => {
    const flag = (args: string[], re: RegExp) => assert.throws(() => parseFlags(args), re);
    flag(['--lr', 'abc'], /^ConfigError: --lr must be a number > 0 \(or null\), got "abc"$/);
    flag(['--lr', '0'], /--lr must be a number > 0/);
    flag(['--batch_size', '2.5'], /--batch_size must be an integer ≥ 1, got "2.5"/);
    flag(['--method', 'prefix'], /--method must be one of vera, lora, head, full, got "prefix"/);
    flag(['--validation_fraction', '1'], /--validation_fraction must be a number in \[0, 1\)/);
    flag(['--epoch', '3'], /unknown option --epoch \(did you mean --epochs\?\)/);
    flag(['--resume=maybe'], /--resume must be true or false/);
    flag(['--no-lr'], /only boolean options can be negated/);
    flag(['--lr'], /--lr needs a value/);
    flag(['stray'], /unexpected argument "stray"/);
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ model: 'm', warmup_ratio: 2 }));
    assert.throws(
      () => readConfigFile(file),
      new RegExp(`${file}: "warmup_ratio" must be a number in \\[0, 1\\], got 2`),
    );
    writeFileSync(file, '{"model": "m",}');
    assert.throws(() => readConfigFile(file), /bad\.json/);
    assert.throws(() => readConfigFile(join(dir, 'none.json')), /none\.json: cannot read the run config \(ENOENT\)/);
    assert.throws(() => resolveConfig({ model: 'm', train_file: 'd' }), /--output_dir is required/);
    assert.throws(
      () => resolveConfig({ model: 'm', train_file: 'd', output_dir: 'o', method: 'head', r: 8 }),
      /--r is an adapter option; --method head has no adapter/,
    );
    assert.throws(
      () => resolveConfig({ model: 'm', train_file: 'd', output_dir: 'o', from_scratch: true }),
      /--from_scratch .* needs --method full/,
    );
  });

  test("--device: cpu or cuda, agreeing with --backend; a later layer's choice replaces an earlier one", () => {
    const base = { model: 'm', train_file: 'd.csv', output_dir: 'o' };
    assert.equal(resolveConfig(base, parseFlags(['--device', 'cuda']).given).device, 'cuda');
    assert.throws(() => parseFlags(['--device', 'gpu']), /--device must be one of cpu, cuda \(or null\), got "gpu"/);
    const both = parseFlags(['--backend', 'native', '--device', 'cpu']).given;
    assert.deepEqual([resolveConfig(base, both).backend, resolveConfig(base, both).device], ['native', 'cpu']);
    assert.throws(
      () => resolveConfig(base, parseFlags(['--backend', 'js', '--device', 'cuda']).given),
      /--backend js and --device cuda disagree: the js backend runs on cpu/,
    );
    // A checkpoint's (or file's) "backend": "native", then --device cuda on the command line: cuda wins.
    const resumed = resolveConfig({ ...base, backend: 'native' }, parseFlags(['--device', 'cuda']).given);
    assert.deepEqual([resumed.backend, resumed.device], [null, 'cuda']);
    const back = resolveConfig({ ...base, device: 'cuda' }, parseFlags(['--backend', 'js']).given);
    assert.deepEqual([back.backend, back.device], ['js', null]);
  });

  test('--help lists every field with its default', () => {
    const help = trainUsage();
    for (const key of Object.keys(FIELDS)) assert.ok(help.includes(`--${key}`), key);
    assert.match(help, /--max_grad_norm N +Clip the gradient norm \(0: off\) \[1\]/);
  });
});

describe('learning-rate schedules (transformers get_*_schedule_with_warmup)', () => {
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);

  test('linear warmup then linear decay to 0', () => {
    const s = { name: 'linear' as const, warmupSteps: 10, totalSteps: 110 };
    close(lrFactor(s, 0), 0);
    close(lrFactor(s, 5), 0.5);
    close(lrFactor(s, 10), 1);
    close(lrFactor(s, 60), 0.5);
    close(lrFactor(s, 110), 0);
    close(lrFactor(s, 200), 0);
  });

  test('cosine: half a period after warmup', () => {
    const s = { name: 'cosine' as const, warmupSteps: 4, totalSteps: 104 };
    close(lrFactor(s, 2), 0.5);
    close(lrFactor(s, 4), 1);
    close(lrFactor(s, 29), 0.5 * (1 + Math.cos(Math.PI * 0.25)));
    close(lrFactor(s, 54), 0.5);
    close(lrFactor(s, 104), 0);
  });

  test('constant after warmup; without warmup the first step has the full rate', () => {
    close(lrFactor({ name: 'constant', warmupSteps: 3, totalSteps: 10 }, 1), 1 / 3);
    close(lrFactor({ name: 'constant', warmupSteps: 3, totalSteps: 10 }, 9), 1);
    close(lrFactor({ name: 'linear', warmupSteps: 0, totalSteps: 10 }, 0), 1);
    close(lrFactor({ name: 'linear', warmupSteps: 0, totalSteps: 10 }, 5), 0.5);
  });

  test('warmup steps: warmup_steps wins, else ⌈ratio · total⌉', () => {
    assert.equal(warmupSteps(7, 0.5, 100), 7);
    assert.equal(warmupSteps(0, 0.1, 95), 10);
    assert.equal(warmupSteps(0, 0, 95), 0);
  });
});
