// --device cpu|cuda on every command that runs a model: the flag is checked with --backend (the two
// must agree), an unknown device is refused by name, and --device cuda either runs (a machine with a
// GPU; VERA_REQUIRE_CUDA=1 insists on it) or fails with the cuda backend's one-line "unavailable"
// error and exit status 1, never a stack trace.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultBackend } from '../../src/backends/registry.js';
import { backendFlags, deviceHelp, selectBackend } from '../../src/cli/common.js';
import { type Run, runVera } from '../helpers/cli.js';

const MODELS = fileURLToPath(new URL('../../../test/parity/fixtures/models/', import.meta.url));
const GPT2 = join(MODELS, 'gpt2-lm');
const REFS = JSON.parse(readFileSync(join(GPT2, 'refs.json'), 'utf8')) as {
  greedy_prompt: number[];
  greedy_tokens: number[];
};
const cudaRequired = process.env['VERA_REQUIRE_CUDA'] === '1';

/** The cuda backend's error when it does not load here, as the CLI prints it: one line, nothing else. */
const UNAVAILABLE = /^vera: \[cuda\] The cuda backend is unavailable: [^\n]+\n$/;

/** A run that either succeeded or failed with exactly the one-line unavailable error. */
function ranOrUnavailable(r: Run, what: string): boolean {
  if (r.status === 0) return true;
  assert.ok(!cudaRequired, `${what} failed under VERA_REQUIRE_CUDA=1: ${r.stderr}`);
  assert.equal(r.status, 1, `${what}: exit status`);
  assert.match(r.stderr, UNAVAILABLE, `${what}: stderr must be the one-line unavailable error`);
  assert.equal(r.stdout, '', `${what}: nothing on stdout`);
  return false;
}

/** A run that failed with one line on stderr matching `re`, and printed nothing on stdout. */
function failedWith(r: Run, re: RegExp): void {
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr.split('\n').length, 2, `one line: ${r.stderr}`);
  assert.match(r.stderr, re);
}

describe('--device and --backend', () => {
  test('agreeing pairs are accepted; each flag alone is too', () => {
    assert.deepEqual(backendFlags('native', 'cpu'), { backend: 'native', device: 'cpu' });
    assert.deepEqual(backendFlags('js', 'cpu'), { backend: 'js', device: 'cpu' });
    assert.deepEqual(backendFlags('cuda', 'cuda'), { backend: 'cuda', device: 'cuda' });
    assert.deepEqual(backendFlags(undefined, 'cuda'), { device: 'cuda' });
    assert.deepEqual(backendFlags('js', undefined), { backend: 'js' });
    assert.deepEqual(backendFlags(undefined, undefined), {});
  });

  test('a pair that disagrees is an error naming both flags', () => {
    for (const [backend, device] of [
      ['js', 'cuda'],
      ['native', 'cuda'],
      ['cuda', 'cpu'],
    ] as const) {
      const re = new RegExp(
        `^Error: --backend ${backend} and --device ${device} disagree: the ${backend} backend runs on `,
      );
      assert.throws(() => backendFlags(backend, device), re);
      // Checked before any backend loads: the cuda backend's own error never shows here.
      assert.throws(() => selectBackend(backend, undefined, device), re);
    }
  });

  test('an unknown device or backend is refused, listing the names', () => {
    assert.throws(() => backendFlags(undefined, 'x'), /^Error: --device must be "cpu" or "cuda", got "x"$/);
    assert.throws(() => backendFlags(undefined, 'CUDA'), /--device must be "cpu" or "cuda", got "CUDA"/);
    assert.throws(() => backendFlags('tpu', 'cpu'), /^Error: --backend must be "js", "native" or "cuda", got "tpu"$/);
  });

  test('--device cpu picks a CPU backend (native when built, else js) and keeps --threads', () => {
    selectBackend(undefined, '1', 'cpu');
    assert.equal(defaultBackend().device, 'cpu');
    assert.ok(['native', 'js'].includes(defaultBackend().name));
    assert.equal(defaultBackend().getThreads?.() ?? 1, 1);
    assert.throws(() => selectBackend(undefined, '0', 'cpu'), /--threads must be an integer ≥ 1, got "0"/);
    selectBackend('js', '2', 'cpu');
    assert.equal(defaultBackend().name, 'js');
  });

  test('--device cuda loads the cuda backend, or fails with its one-line unavailable error', () => {
    let err: unknown = null;
    try {
      selectBackend(undefined, '2', 'cuda'); // --threads is ignored on cuda, as on js
    } catch (e) {
      err = e;
    }
    if (err === null) {
      assert.equal(defaultBackend().name, 'cuda');
      assert.equal(defaultBackend().device, 'cuda');
      selectBackend('js', undefined); // leave the rest of this file on the CPU
    } else {
      assert.ok(!cudaRequired, `cuda did not load under VERA_REQUIRE_CUDA=1: ${String(err)}`);
      assert.ok(err instanceof Error);
      assert.match(err.message, /^\[cuda\] The cuda backend is unavailable: /);
      assert.ok(!err.message.includes('\n'), 'one line');
    }
  });

  test('deviceHelp: the flag, the choices, the default and VERA_DEVICE', () => {
    const help = deviceHelp(23);
    assert.equal(
      help,
      '  --device cpu|cuda    cpu (default) or cuda (an NVIDIA GPU; VERA_DEVICE=cuda sets the default)\n',
    );
    // A column narrower than the flag puts the text on the next line, aligned.
    assert.equal(deviceHelp(12).split('\n')[0], '  --device cpu|cuda');
    assert.ok(
      deviceHelp(12)
        .split('\n')[1]!
        .startsWith(`${' '.repeat(12)}cpu (default)`),
    );
  });
});

describe('vera <command> --device', () => {
  const gen = (...args: string[]) =>
    runVera('generate', ['--model', GPT2, '--ids', REFS.greedy_prompt.join(','), '--json', ...args]);

  test('generate --device cpu: transformers’ greedy tokens', async () => {
    for (const r of await Promise.all([
      gen('--max-new-tokens', String(REFS.greedy_tokens.length), '--device', 'cpu'),
      gen('--max-new-tokens', String(REFS.greedy_tokens.length), '--device=cpu', '--backend', 'native'),
    ])) {
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { generated_ids: number[] };
      assert.deepEqual(out.generated_ids, REFS.greedy_tokens.slice(0, out.generated_ids.length));
    }
  });

  test('generate --device cuda: runs on a GPU (same greedy tokens), else one clean error line', async () => {
    const r = await gen('--max-new-tokens', String(REFS.greedy_tokens.length), '--device', 'cuda');
    if (ranOrUnavailable(r, 'vera generate --device cuda')) {
      const out = JSON.parse(r.stdout) as { generated_ids: number[] };
      assert.deepEqual(out.generated_ids, REFS.greedy_tokens.slice(0, out.generated_ids.length));
    }
  });

  test('every model-running command takes --device and lists it in --help', async () => {
    const commands = ['classify', 'eval', 'generate', 'logits', 'merge', 'serve', 'train', 'demo'];
    const helps = await Promise.all(commands.map((c) => runVera(c, ['--help'])));
    helps.forEach((h, i) => {
      assert.equal(h.status, 0, `${commands[i]}: ${h.stderr}`);
      assert.match(h.stdout, /--device (cpu\|cuda|X)/, `${commands[i]} --help`);
      assert.match(h.stdout, /--backend (js\|native\|cuda|X)/, `${commands[i]} --help`);
    });
    const main = await runVera('help', []);
    assert.match(main.stdout, /--device cpu\|cuda +cpu \(default\) or cuda/);
  });

  test('a disagreeing pair or an unknown device fails as one line on every command, before loading', async () => {
    const seqcls = join(MODELS, 'gpt2-seqcls');
    const runs: [string, string[]][] = [
      ['classify', ['--model', seqcls, '--text', 'hi']],
      ['eval', ['--model', seqcls, '--data', 'missing.csv']],
      ['logits', ['--model', seqcls, '--ids', '1,2']],
      ['merge', ['--model', seqcls, '--adapter', 'missing', '--out', 'missing-out']],
      ['serve', ['--model', seqcls, '--adapters', 'missing']],
      ['train', ['--model', seqcls, '--train_file', 'missing.csv', '--output_dir', 'missing-out']],
      ['demo', ['--out', 'missing-out']],
      ['generate', ['--model', GPT2, '--ids', '1,2']],
    ];
    const conflicts = await Promise.all(
      runs.map(([c, a]) => runVera(c, [...a, '--backend', 'js', '--device', 'cuda'])),
    );
    conflicts.forEach((r) => failedWith(r, /^vera: --backend js and --device cuda disagree/));
    const unknown = await Promise.all(runs.map(([c, a]) => runVera(c, [...a, '--device', 'gpu'])));
    unknown.forEach((r, i) =>
      failedWith(
        r,
        runs[i]![0] === 'train' ? /--device must be one of cpu, cuda/ : /--device must be "cpu" or "cuda", got "gpu"/,
      ),
    );
  });

  test('--device cuda on the other commands: the unavailable error is one line where there is no GPU', async (t) => {
    // logits is cheap enough to run on a GPU too; on a machine without one, each command fails the same way.
    const r = await runVera('logits', ['--model', join(MODELS, 'gpt2-seqcls'), '--ids', '1,2', '--device', 'cuda']);
    if (ranOrUnavailable(r, 'vera logits --device cuda')) {
      t.diagnostic('cuda is available here: only logits was run on it');
      return;
    }
    const seqcls = join(MODELS, 'gpt2-seqcls');
    const runs = await Promise.all([
      runVera('classify', ['--model', seqcls, '--text', 'hi', '--device', 'cuda']),
      runVera('eval', ['--model', seqcls, '--data', 'missing.csv', '--device', 'cuda']),
      runVera('merge', ['--model', seqcls, '--adapter', 'missing', '--out', 'missing-out', '--device', 'cuda']),
      runVera('serve', ['--model', seqcls, '--adapters', 'missing', '--device', 'cuda']),
      runVera('train', [
        '--model',
        seqcls,
        '--train_file',
        'missing.csv',
        '--output_dir',
        'missing-out',
        '--device',
        'cuda',
      ]),
    ]);
    runs.forEach((x) => {
      assert.equal(x.status, 1, x.stderr);
      assert.match(x.stderr, UNAVAILABLE);
    });
  });
});
