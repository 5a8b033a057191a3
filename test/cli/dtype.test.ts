// --dtype f32|bf16 on every command that runs a model: bf16 loads the frozen weights in bf16 and computes
// their GEMMs in bf16, so logits move by bf16 rounding only (stated tolerance), greedy decoding of the bf16
// fixture keeps transformers' tokens, and a dtype other than f32/bf16 is refused by name before loading.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runVera } from '../helpers/cli.js';

const MODELS = fileURLToPath(new URL('../../../test/parity/fixtures/models/', import.meta.url));
/** bf16 against f32 logits, relative to the largest logit (see test/models/bf16-storage.test.ts). */
const BF16_TOL = 2e-2;

function logits(stdout: string): number[] {
  return (JSON.parse(stdout) as { data: number[] }).data;
}

describe('--dtype', () => {
  test('vera logits --dtype bf16 stays within bf16 rounding of f32, and differs from it', async () => {
    for (const name of ['llama-tied-bf16', 'gpt2-lm', 'bert-seqcls']) {
      const args = ['--model', join(MODELS, name), '--ids', '1,5,9,2'];
      const [f32, bf16] = await Promise.all([runVera('logits', args), runVera('logits', [...args, '--dtype', 'bf16'])]);
      assert.equal(bf16.status, 0, bf16.stderr);
      const [a, b] = [logits(f32.stdout), logits(bf16.stdout)];
      assert.equal(a.length, b.length);
      const scale = Math.max(...a.map(Math.abs));
      const err = Math.max(...a.map((x, i) => Math.abs(x - b[i]!)));
      assert.ok(err <= BF16_TOL * scale, `${name}: bf16 logits differ by ${err} (largest |logit| ${scale})`);
      assert.ok(err > 0, `${name}: bf16 logits equal f32's: --dtype was not applied`);
    }
  });

  test("vera generate --dtype bf16: greedy tokens of the bf16 fixture equal transformers'", async () => {
    const dir = join(MODELS, 'llama-tied-bf16');
    const refs = JSON.parse(readFileSync(join(dir, 'refs.json'), 'utf8')) as {
      greedy_prompt: number[];
      greedy_tokens: number[];
    };
    const run = await runVera('generate', [
      '--model',
      dir,
      '--ids',
      refs.greedy_prompt.join(','),
      '--max-new-tokens',
      String(refs.greedy_tokens.length),
      '--dtype',
      'bf16',
      '--json',
    ]);
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual((JSON.parse(run.stdout) as { generated_ids: number[] }).generated_ids, refs.greedy_tokens);
  });

  test('every model-running command refuses another dtype, naming the flag and the value', async () => {
    const model = join(MODELS, 'gpt2-lm');
    const cases: [string, string[]][] = [
      ['logits', ['--model', model, '--ids', '1']],
      ['generate', ['--model', model, '--ids', '1']],
      ['classify', ['--model', join(MODELS, 'bert-seqcls'), '--text', 'hi']],
      ['eval', ['--model', model, '--data', 'x.jsonl']],
      ['serve', ['--model', model, '--adapters', '.']],
    ];
    const runs = await Promise.all(cases.map(([cmd, args]) => runVera(cmd, [...args, '--dtype', 'f16'])));
    runs.forEach((r, i) => {
      assert.equal(r.status, 1, `${cases[i]![0]}: ${r.stderr}`);
      assert.match(r.stderr, /--dtype must be f32 or bf16, got "f16"/, cases[i]![0]);
    });
    const help = await Promise.all(
      ['logits', 'generate', 'classify', 'eval', 'serve'].map((c) => runVera(c, ['--help'])),
    );
    help.forEach((h) => assert.match(h.stdout, /--dtype f32\|bf16 +bf16: the frozen Linear\/Embedding weights/));
  });
});
