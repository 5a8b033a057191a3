// Flag spellings: every command takes --name_with_underscores and --name-with-dashes alike (common.ts's
// parseArgs, which every command parses with), help texts show the underscore spelling, and every
// model-running command lists --backend, --device and --threads.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { flagKey, parseArgs } from '../../src/cli/common.js';
import { BIN, type Run, runVera } from '../helpers/cli.js';
import { fixtureModel, keywordCsv, scratch } from '../train/helpers.js';

const { dir: root, cleanup } = scratch('flags');
after(cleanup);

const ok = (r: Run): string => {
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
};

describe('parseArgs (both spellings)', () => {
  const options = {
    max_new_tokens: { type: 'string' },
    'max-batch': { type: 'string' },
    stop: { type: 'string', multiple: true },
    json: { type: 'boolean' },
    model: { type: 'string', short: 'm' },
  } as const;

  test('flagKey: dashes and underscores are one character', () => {
    assert.equal(flagKey('max-new-tokens'), 'max_new_tokens');
    assert.equal(flagKey('max_new-tokens'), 'max_new_tokens');
    assert.equal(flagKey('json'), 'json');
  });

  test('each declared option is taken in either spelling, also as --flag=value; keys are the declared names', () => {
    for (const args of [
      ['--max-new-tokens', '3', '--max_batch', '2'],
      ['--max_new_tokens=3', '--max-batch=2'],
      ['--max-new_tokens', '3', '--max-batch', '2'],
    ]) {
      const { values } = parseArgs({ args, options, strict: true });
      assert.deepEqual({ ...values }, { max_new_tokens: '3', 'max-batch': '2' }, args.join(' '));
    }
  });

  test('values are never rewritten: after a string option, after =, after --', () => {
    const { values, positionals } = parseArgs({
      args: ['-m', '--max_batch=x', '--stop=--max-new-tokens', '--stop', '--max_batch', '--json', '--', '--max_batch'],
      options,
      allowPositionals: true,
      strict: false, // strict mode refuses a value that looks like a flag; the rewriting must not touch it either
    });
    assert.equal(values.model, '--max_batch=x');
    assert.deepEqual(values.stop, ['--max-new-tokens', '--max_batch']);
    assert.equal(values.json, true);
    assert.deepEqual(positionals, ['--max_batch']);
  });

  test('unknown flags keep the spelling given in the error; one flag declared twice is refused', () => {
    assert.throws(() => parseArgs({ args: ['--max-new-token', '3'], options, strict: true }), /'--max-new-token'/);
    assert.throws(
      () => parseArgs({ args: [], options: { a_b: { type: 'string' }, 'a-b': { type: 'string' } } }),
      /options "a_b" and "a-b" are one flag spelled two ways/,
    );
  });
});

describe('vera <command> with either spelling', () => {
  const gpt2 = fixtureModel(root, 'gpt2-lm');
  const seqcls = fixtureModel(root, 'gpt2-seqcls');

  test('generate: --max-new-tokens / --max_new_tokens, --top-k / --top_k, --repetition-penalty', async () => {
    const base = ['--model', gpt2, '--ids', '5,9,13', '--json', '--temperature', '1', '--seed', '3'];
    const [a, b, c] = await Promise.all([
      runVera('generate', [...base, '--max_new_tokens', '6', '--top_k', '5', '--repetition_penalty', '1.5']),
      runVera('generate', [...base, '--max-new-tokens', '6', '--top-k', '5', '--repetition-penalty', '1.5']),
      runVera('generate', [...base, '--max-new-tokens=6', '--top-k=5', '--top_p', '1', '--repetition-penalty=1.5']),
    ]);
    const ids = [a!, b!, c!].map((r) => (JSON.parse(ok(r)) as { generated_ids: number[] }).generated_ids);
    assert.equal(ids[0]!.length, 6);
    assert.deepEqual(ids[1], ids[0]);
    assert.deepEqual(ids[2], ids[0]);
  });

  test('classify: --label-names / --label_names', async () => {
    const args = ['--model', seqcls, '--text', 'w7 w8 w12', '--json'];
    const runs = await Promise.all([
      runVera('classify', [...args, '--label_names', 'a,b,c']),
      runVera('classify', [...args, '--label-names', 'a,b,c']),
      runVera('classify', [...args, '--label-names', 'a,b']),
    ]);
    const labels = runs
      .slice(0, 2)
      .map((r) => (JSON.parse(ok(r)) as { labels: { label: string }[] }).labels.map((l) => l.label).sort());
    assert.deepEqual(labels, [
      ['a', 'b', 'c'],
      ['a', 'b', 'c'],
    ]);
    assert.equal(runs[2]!.status, 1);
    assert.match(runs[2]!.stderr, /--label_names gives 2 names for a head of 3 labels/);
  });

  test('eval: --batch-size / --batch_size, --label-names, --max-length', async () => {
    const data = keywordCsv(join(root, 'eval.csv'), 24);
    const args = ['--model', seqcls, '--data', data, '--task', 'classification'];
    const [a, b] = await Promise.all([
      runVera('eval', [...args, '--batch_size', '8', '--label_names', 'neg,pos,other', '--max_length', '16']),
      runVera('eval', [...args, '--batch-size', '8', '--label-names', 'neg,pos,other', '--max-length', '16']),
    ]);
    const [x, y] = [JSON.parse(ok(a!)) as { examples: number }, JSON.parse(ok(b!)) as { examples: number }];
    assert.equal(x.examples, 24);
    assert.deepEqual(y, x);
  });

  test('serve and merge check the flag whichever the spelling (errors before anything starts)', async () => {
    const runs = await Promise.all([
      runVera('serve', ['--model', gpt2, '--adapters', root, '--max_batch', '0']),
      runVera('serve', ['--model', gpt2, '--adapters', root, '--max-batch', '0']),
      runVera('serve', ['--model', gpt2, '--adapters', root, '--batch_window_ms=-1']),
      runVera('merge', [
        '--model',
        gpt2,
        '--adapter',
        join(root, 'none'),
        '--out',
        join(root, 'o'),
        '--label-names',
        'a',
      ]),
    ]);
    for (const r of runs.slice(0, 2)) {
      assert.equal(r.status, 1);
      assert.match(r.stderr, /^vera: --max-batch must be an integer ≥ 1, got "0"\n$/);
    }
    assert.match(runs[2]!.stderr, /--batch-window-ms must be an integer ≥ 0, got "-1"/);
    assert.equal(runs[3]!.status, 1);
    assert.doesNotMatch(runs[3]!.stderr, /Unknown option/, 'merge took --label-names');
  });

  test('help texts spell multi-word flags with underscores; model-running commands list --backend/--device/--threads', async () => {
    // serve's help (src/cli/serve.ts) is not checked here for the spelling: its own flags are dashed there.
    const spelled = ['generate', 'classify', 'eval', 'merge', 'logits', 'demo'];
    const running = ['generate', 'classify', 'eval', 'merge', 'logits', 'demo', 'serve', 'train'];
    const helps = await Promise.all(
      [...new Set([...spelled, ...running])].map(async (c) => [c, await runVera(c, ['--help'])] as const),
    );
    // inspect runs no model (runVera adds --threads): spawned on its own.
    const inspect = spawnSync(process.execPath, [BIN, 'inspect', '--help'], { encoding: 'utf8' });
    helps.push(['inspect', { status: inspect.status ?? -1, stdout: inspect.stdout, stderr: inspect.stderr }]);
    spelled.push('inspect');
    for (const [c, r] of helps) {
      const text = ok(r);
      if (spelled.includes(c)) {
        const dashed = text.match(/--[a-z]+-[a-z][a-z-]*/g) ?? [];
        assert.deepEqual(dashed, [], `vera ${c} --help`);
      }
      if (running.includes(c))
        for (const flag of ['--backend', '--device', '--threads'])
          assert.ok(text.includes(flag), `vera ${c} --help: ${flag}`);
    }
  });
});
