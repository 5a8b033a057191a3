// `vera train`, `eval`, `merge`, `inspect` as child processes: help, one-line errors, a diverging run,
// train → eval → merge → eval, and the kill test: Ctrl-C, then SIGKILL again and again (also mid-checkpoint),
// resumed each time, ends byte-identical to an uninterrupted run, and no checkpoint is ever half-written.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SafetensorsReader } from '../../src/io/safetensors.js';
import { BIN, fixtureModel, keywordCsv, scratch } from '../train/helpers.js';

let root: string;
let cleanup: () => void;
let gpt2: string;
let data: string;
let runFile: string;
before(() => {
  ({ dir: root, cleanup } = scratch('cli-train'));
  gpt2 = fixtureModel(root, 'gpt2-lm');
  data = keywordCsv(join(root, 'keywords.csv'));
  runFile = join(root, 'run.json');
  writeFileSync(
    runFile,
    JSON.stringify({
      model: gpt2,
      train_file: data,
      method: 'vera',
      r: 16,
      lr: 0.03,
      head_lr: 0.01,
      batch_size: 4,
      gradient_accumulation_steps: 2,
      adapter_dropout: 0.1,
      max_steps: 36,
      save_steps: 3,
      eval_steps: 12,
      logging_steps: 4,
      lr_scheduler: 'cosine',
      warmup_ratio: 0.1,
      threads: 1,
    }),
  );
});
after(() => cleanup());

const vera = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });

/** Asserts that every checkpoint-<step> directory is complete and readable. */
function assertCheckpointsComplete(out: string): number[] {
  const steps: number[] = [];
  for (const name of existsSync(out) ? readdirSync(out) : []) {
    const m = /^checkpoint-(\d+)$/.exec(name);
    if (!m) continue;
    const dir = join(out, name);
    for (const f of ['trainer_state.json', 'training_config.json', 'adapter_config.json'])
      JSON.parse(readFileSync(join(dir, f), 'utf8'));
    for (const f of ['adapter_model.safetensors', 'optimizer.safetensors'])
      SafetensorsReader.open(join(dir, f)).close();
    steps.push(Number(m[1]));
  }
  if (existsSync(join(out, 'latest'))) {
    const latest = readFileSync(join(out, 'latest'), 'utf8').trim();
    assert.ok(existsSync(join(out, latest, 'trainer_state.json')), `latest names ${latest}, which is complete`);
  }
  return steps.sort((a, b) => a - b);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves when `cond` holds (polled every 2 ms) or the child exits; true when the condition held. */
async function waitFor(child: ChildProcess, cond: () => boolean, limitMs = 20_000): Promise<boolean> {
  const t0 = Date.now();
  while (child.exitCode === null && child.signalCode === null && Date.now() - t0 < limitMs) {
    if (cond()) return true;
    await sleep(2);
  }
  return false;
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', () => resolve()));
}

describe('vera train (CLI)', () => {
  test('--help everywhere; bad input gets one line naming the field or file', () => {
    const help = vera(['train', '--help']);
    assert.equal(help.status, 0);
    for (const flag of ['--lr', '--head_lr', '--gradient_accumulation_steps', '--resume', '--output_dir', '--config'])
      assert.ok(help.stdout.includes(flag), flag);
    for (const cmd of ['eval', 'merge', 'inspect']) {
      const r = vera([cmd, '--help']);
      assert.equal(r.status, 0);
      assert.match(r.stdout, new RegExp(`^Usage: vera ${cmd}`));
    }
    assert.match(vera(['--help']).stdout, /train {5}Fine-tune/);

    const oneLine = (args: string[], re: RegExp) => {
      const r = vera(args);
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    };
    oneLine(
      ['train', '--config', runFile, '--output_dir', join(root, 'x'), '--lr', 'abc'],
      /^vera: --lr must be a number > 0/,
    );
    oneLine(['train', '--config', runFile, '--epoch', '1'], /unknown option --epoch \(did you mean --epochs\?\)/);
    const badFile = join(root, 'bad.json');
    writeFileSync(badFile, JSON.stringify({ model: gpt2, batchsize: 8 }));
    oneLine(
      ['train', '--config', badFile],
      new RegExp(`${badFile}: "batchsize" is not a training option \\(did you mean "batch_size"\\?\\)`),
    );
    oneLine(
      ['train', '--config', runFile, '--output_dir', join(root, 'y'), '--train_file', join(root, 'nope.csv')],
      /nope\.csv: no such file/,
    );
    oneLine(['eval', '--model', gpt2], /--data is required/);
    oneLine(['inspect', join(root, 'nothing')], /not a directory/);
  });

  test('a diverging run (a huge learning rate) exits 1 saying at which step', () => {
    const out = join(root, 'diverge');
    const r = vera(['train', '--config', runFile, '--output_dir', out, '--lr', '1e30', '--head_lr', '1e30']);
    assert.equal(r.status, 1, r.stderr);
    assert.match(
      r.stderr,
      // Found where losses are read (here every save step): at the step itself, or at a later one.
      /vera: the (loss|gradient norm) became (NaN|-?Infinity) at step \d+; stopped (without applying that update|at step \d+, the next step that reads losses back, without saving any update from step \d+ on)/,
    );
    assert.equal(JSON.parse(r.stdout.trim())['status'], 'diverged');
    assertCheckpointsComplete(out);
  });

  test('killed with SIGKILL again and again, resumed each time: the same adapter bytes as an uninterrupted run', async () => {
    const ref = join(root, 'ref');
    const whole = vera(['train', '--config', runFile, '--output_dir', ref]);
    assert.equal(whole.status, 0, whole.stderr);
    const want = readFileSync(join(ref, 'adapter', 'adapter_model.safetensors'));

    const out = join(root, 'killed');
    let kills = 0;
    let midWrite = 0;
    let seed = 12345;
    const random = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    for (let round = 0; round < 9; round++) {
      // Every other round the checkpoint files are written slowly, and the kill lands inside a checkpoint.
      const slow = round % 2 === 1;
      // Round 0 (Ctrl-C) writes its checkpoints very slowly (≥ 0.6 s each, 11 more to go after the first):
      // on a loaded machine, where this process may not run for a while, the run must still be going
      // when the signal comes, or it has finished, removed its handler, and the signal's default action
      // ends it (exit code null). The run stops at the next step once signalled, so this costs little.
      const delay = round === 0 ? '300' : slow ? '25' : undefined;
      const child = spawn(process.execPath, [BIN, 'train', '--config', runFile, '--output_dir', out, '--resume'], {
        stdio: 'ignore',
        env: { ...process.env, ...(delay ? { VERA_TRAIN_CHECKPOINT_DELAY_MS: delay } : {}) },
      });
      const latest = () => (existsSync(join(out, 'latest')) ? readFileSync(join(out, 'latest'), 'utf8') : '');
      const before = latest();
      const tmp = () => existsSync(out) && readdirSync(out).some((n) => n.startsWith('.tmp-checkpoint-'));
      const hit = slow ? await waitFor(child, tmp) : await waitFor(child, () => latest() !== before);
      if (!hit) {
        await exited(child);
        break; // finished before it could be killed
      }
      if (round === 0) {
        // Ctrl-C: the run stops after the current step with a checkpoint and exits 130.
        child.kill('SIGINT');
        await exited(child);
        assert.equal(child.exitCode, 130);
        assert.equal(latest(), `checkpoint-${assertCheckpointsComplete(out).at(-1)}\n`);
        continue;
      }
      await sleep(slow ? random() * 60 : random() * 40);
      if (slow && tmp()) midWrite++;
      child.kill('SIGKILL');
      await exited(child);
      if (child.signalCode === 'SIGKILL') kills++;
      assertCheckpointsComplete(out);
    }
    const rest = vera(['train', '--config', runFile, '--output_dir', out, '--resume']);
    assert.equal(rest.status, 0, rest.stderr);
    assert.ok(kills >= 4, `${kills} kills`);
    assert.ok(midWrite >= 1, `${midWrite} kills in the middle of a checkpoint`);
    assert.ok(readFileSync(join(out, 'adapter', 'adapter_model.safetensors')).equals(want), 'byte-identical adapter');
    assert.deepEqual(
      readFileSync(join(out, 'best', 'adapter_model.safetensors')),
      readFileSync(join(ref, 'best', 'adapter_model.safetensors')),
    );
    assert.ok(!readdirSync(out).some((n) => n.startsWith('.tmp-') || n.startsWith('.trash-')), 'no leftovers');
  });

  test('train → eval → merge → eval on the merged model; inspect describes each directory', () => {
    const ref = join(root, 'ref'); // from the kill test
    if (!existsSync(join(ref, 'adapter')))
      assert.equal(vera(['train', '--config', runFile, '--output_dir', ref]).status, 0);
    const withAdapter = vera(['eval', '--model', gpt2, '--adapter', join(ref, 'best'), '--data', data]);
    assert.equal(withAdapter.status, 0, withAdapter.stderr);
    const a = JSON.parse(withAdapter.stdout) as Record<string, number>;
    assert.equal(a['examples'], 200);
    assert.ok(a['accuracy']! > 0.7, withAdapter.stdout);

    const merged = join(root, 'merged');
    const m = vera([
      'merge',
      '--model',
      gpt2,
      '--adapter',
      join(ref, 'best'),
      '--out',
      merged,
      '--label-names',
      'neg,pos',
    ]);
    assert.equal(m.status, 0, m.stderr);
    assert.equal(JSON.parse(m.stdout)['architecture'], 'GPT2ForSequenceClassification');
    const config = JSON.parse(readFileSync(join(merged, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(config['id2label'], { '0': 'neg', '1': 'pos' });
    const b = JSON.parse(vera(['eval', '--model', merged, '--data', data]).stdout) as Record<string, number>;
    assert.equal(b['accuracy'], a['accuracy']);
    assert.ok(Math.abs(b['loss']! - a['loss']!) < 1e-4, `${a['loss']} vs ${b['loss']}`);
    // Merged into bf16 weights: BF16 in the file, and nearly the same model.
    const mergedBf16 = join(root, 'merged-bf16');
    const args = ['merge', '--model', gpt2, '--adapter', join(ref, 'best'), '--out', mergedBf16];
    assert.equal(vera([...args, '--dtype', 'bf16']).status, 0);
    const file = SafetensorsReader.open(join(mergedBf16, 'model.safetensors'));
    assert.equal(file.info('transformer.h.0.attn.c_attn.weight').dtype, 'BF16');
    file.close();
    const c = JSON.parse(vera(['eval', '--model', mergedBf16, '--data', data]).stdout) as Record<string, number>;
    assert.ok(Math.abs(c['loss']! - a['loss']!) < 2e-3, `${a['loss']} vs ${c['loss']} (bf16)`);
    assert.match(vera([...args, '--dtype', 'f16']).stderr, /--dtype must be f32 or bf16, got "f16"/);

    // classify: the adapter on its causal-LM base (built as the classifier training used) and the merged
    // model give the same probabilities; generate says the adapter makes the base a classifier.
    type Labels = { labels: { label: string; score: number }[] };
    const text = ['--text', 'w7 w7 w7 w7', '--json'];
    const classify = (names: string) =>
      vera(['classify', '--model', gpt2, '--adapter', join(ref, 'best'), '--label_names', names, ...text]);
    const onBase = classify('neg,pos');
    assert.equal(onBase.status, 0, onBase.stderr);
    const fromMerged = vera(['classify', '--model', merged, ...text]);
    const [p, q] = [onBase, fromMerged].map((r) => (JSON.parse(r.stdout) as Labels).labels);
    for (const labels of [p!, q!])
      assert.deepEqual(
        labels.map((l) => l.label),
        ['pos', 'neg'],
      );
    assert.ok(Math.abs(p![0]!.score - q![0]!.score) < 1e-5, `${p![0]!.score} vs ${q![0]!.score}`);
    const wrongNames = classify('a,b,c');
    assert.equal(wrongNames.status, 1);
    assert.match(wrongNames.stderr, /--label_names gives 3 names for a head of 2 labels/);
    const gen = vera(['generate', '--model', gpt2, '--adapter', join(ref, 'best'), '--ids', '1,2']);
    assert.equal(gen.status, 1);
    assert.match(gen.stderr, /with the adapter .* is a GPT2ForSequenceClassification .*try vera classify/);

    const adapter = JSON.parse(vera(['inspect', join(ref, 'adapter'), '--json']).stdout) as Record<string, unknown>;
    assert.equal(adapter['kind'], 'adapter');
    assert.equal(adapter['method'], 'VERA');
    assert.equal(adapter['r'], 16);
    // λ_b (96) and λ_d (16) in each of 2 c_attn layers, and the 2×32 head.
    assert.equal(adapter['trainable_parameters'], 2 * (96 + 16) + 64);
    const run = JSON.parse(vera(['inspect', ref, '--json']).stdout) as Record<string, unknown>;
    assert.equal(run['kind'], 'training run');
    assert.equal(run['step'], 36);
    const model = vera(['inspect', gpt2]);
    assert.match(model.stdout, /architecture +GPT2LMHeadModel/);
    assert.match(model.stdout, /parameters +31,616/);
  });
});
