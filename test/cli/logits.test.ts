// `vera logits`, the stable contract: one JSON object {"shape","data"} on stdout for one example, with
// or without a PEFT adapter (merged or not), from token ids or a pixel_values file; errors exit 1.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { demoMethod } from '../../src/experiments/demo-recipe.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { tensor } from '../../src/tensor/creation.js';
import { train } from '../../src/train/trainer.js';
import { fixtureModel, keywordCsv, quietSink, runConfig, scratch } from '../train/helpers.js';

const BIN = fileURLToPath(new URL('../../../bin/vera.js', import.meta.url));
const FIX = fileURLToPath(new URL('../../../test/parity/fixtures/', import.meta.url));
const vera = (...args: string[]) => spawnSync(process.execPath, [BIN, 'logits', ...args], { encoding: 'utf8' });
const refs = (path: string) =>
  JSON.parse(readFileSync(join(FIX, path, 'refs.json'), 'utf8')) as Record<string, unknown>;

function parse(stdout: string): { shape: number[]; data: number[] } {
  const lines = stdout.trim().split('\n');
  assert.equal(lines.length, 1, 'exactly one line on stdout');
  return JSON.parse(lines[0]!) as { shape: number[]; data: number[] };
}

function close(got: number[], want: number[]): void {
  assert.equal(got.length, want.length);
  got.forEach((v, i) =>
    assert.ok(Math.abs(v - want[i]!) <= 1e-4 + 1e-4 * Math.abs(want[i]!), `element ${i}: ${v} vs ${want[i]}`),
  );
}

describe('vera logits', () => {
  // Row 0 of the fixtures' batch is unpadded, so its logits are the single-example logits.
  const ids = (refs('models/llama-lm')['inputs'] as Record<string, number[]>)['input_ids']!.slice(0, 7);

  test("a causal LM prints [seq, vocab] logits equal to transformers'", () => {
    const r = vera('--model', join(FIX, 'models/llama-lm'), '--ids', ids.join(','));
    assert.equal(r.status, 0, r.stderr);
    const out = parse(r.stdout);
    assert.deepEqual(out.shape, [7, 128]);
    close(out.data, (refs('models/llama-lm')['logits'] as number[]).slice(0, 7 * 128));
  });

  test("with a PEFT adapter, merged or not, it prints PEFT's logits", () => {
    const want = (refs('adapters/llama-lora')['adapted'] as number[]).slice(0, 7 * 128);
    for (const merge of [[], ['--merge']]) {
      const r = vera(
        '--model',
        join(FIX, 'models/llama-lm'),
        '--adapter',
        join(FIX, 'adapters/llama-lora'),
        ...merge,
        '--ids',
        ids.join(','),
      );
      assert.equal(r.status, 0, r.stderr);
      close(parse(r.stdout).data, want);
    }
  });

  test('an image classifier reads pixel_values and prints [num_labels]', () => {
    const vit = refs('models/vit-imgcls') as { inputs: Record<string, number[]>; logits: number[] };
    const dir = mkdtempSync(join(tmpdir(), 'vera-pixels-'));
    const pixels = tensor(Float32Array.from(vit.inputs['pixel_values']!.slice(0, 3 * 16 * 16)), {
      shape: [1, 3, 16, 16],
    });
    writeSafetensors(join(dir, 'pixels.safetensors'), { pixel_values: pixels });
    const r = vera(
      '--model',
      join(FIX, 'models/vit-imgcls'),
      '--adapter',
      join(FIX, 'adapters/vit-vera-head'),
      '--pixels',
      join(dir, 'pixels.safetensors'),
    );
    assert.equal(r.status, 0, r.stderr);
    const out = parse(r.stdout);
    assert.deepEqual(out.shape, [5]);
    close(out.data, (refs('adapters/vit-vera-head')['adapted'] as number[]).slice(0, 5));
  });

  test("a classification adapter trained on a causal-LM base (as the demo's) loads as vera classify loads it", async () => {
    const { dir, cleanup } = scratch('logits-cls');
    try {
      const base = fixtureModel(dir, 'gpt2-lm');
      for (const method of ['vera', 'lora'] as const) {
        const run = await train({
          config: runConfig({
            model: base,
            train_file: keywordCsv(join(dir, 'keywords.csv'), 48),
            task: 'classification',
            label_names: ['neg', 'pos'],
            ...demoMethod(method),
            target_modules: ['attn.c_attn'],
            r: method === 'vera' ? 16 : 4,
            max_steps: 3,
            batch_size: 16,
            output_dir: join(dir, method),
          }),
          sink: quietSink(),
        });
        assert.equal(run.status, 'completed');
        const adapter = join(dir, method, 'adapter');
        const logits = vera('--model', base, '--adapter', adapter, '--ids', '7,8,12,7');
        assert.equal(logits.status, 0, logits.stderr);
        const out = parse(logits.stdout);
        assert.deepEqual(out.shape, [2], 'the classifier head: [num_labels]');
        const cls = spawnSync(
          process.execPath,
          [BIN, 'classify', '--model', base, '--adapter', adapter, '--text', 'w7 w8 w12 w7', '--json'],
          { encoding: 'utf8' },
        );
        assert.equal(cls.status, 0, cls.stderr);
        close(out.data, (JSON.parse(cls.stdout) as { logits: number[] }).logits);
        const merged = vera('--model', base, '--adapter', adapter, '--merge', '--ids', '7,8,12,7');
        assert.equal(merged.status, 0, merged.stderr);
        close(parse(merged.stdout).data, out.data);
      }
    } finally {
      cleanup();
    }
  });

  test('bad arguments fail with a message and exit 1', () => {
    const noInput = vera('--model', join(FIX, 'models/llama-lm'));
    assert.equal(noInput.status, 1);
    assert.match(noInput.stderr, /exactly one of --ids and --pixels/);
    const badIds = vera('--model', join(FIX, 'models/llama-lm'), '--ids', '1,x');
    assert.match(badIds.stderr, /--ids must be comma-separated/);
    const outside = vera('--model', join(FIX, 'models/llama-lm'), '--ids', '1,128');
    assert.equal(outside.status, 1);
    assert.match(
      outside.stderr,
      /--ids: token id 128 at position 1 is outside the model's vocabulary \(vocab_size 128\)/,
    );
    const missing = vera('--model', '/nonexistent', '--ids', '1');
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /nonexistent/);
    assert.equal(missing.stdout, '');
  });
});
