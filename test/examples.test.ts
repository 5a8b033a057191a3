// The examples run as written: the README's library example (examples/vera-finetune.ts) produces a PEFT
// adapter and a merged model whose logits equal the adapted model's; examples/many-adapters.ts serves
// three users' adapters in one batch.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { PeftModel } from '../src/adapters/peft-model.js';
import { noGrad } from '../src/autograd/graph.js';
import { loadModel } from '../src/models/auto.js';
import { tensor } from '../src/tensor/creation.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('examples', () => {
  test("many-adapters: one batch, each row on its own adapter, predicts each user's token", () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'dist/examples/many-adapters.js')], {
      encoding: 'utf8',
      cwd: ROOT,
    });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0]!, /^3 adapters of \d+ bytes each on one base model$/);
    for (const user of ['ada', 'bob', 'cy'])
      assert.match(r.stdout, new RegExp(`^${user}: next token (\\d+) \\(\\1 taught\\) ✓$`, 'm'));
    assert.match(lines.at(-1)!, /^__base__: next token \d+/);
  });

  test('vera-finetune trains, saves a PEFT adapter and a merged model that agree', () => {
    const out = mkdtempSync(join(tmpdir(), 'vera-example-'));
    const model = join(ROOT, 'test/parity/fixtures/models/llama-lm');
    const r = spawnSync(process.execPath, [join(ROOT, 'dist/examples/vera-finetune.js'), model, out], {
      encoding: 'utf8',
      cwd: ROOT,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^trainable params: 160 \|\| all params: 23,872/);
    assert.ok(
      existsSync(join(out, 'adapter/adapter_model.safetensors')) && existsSync(join(out, 'merged/model.safetensors')),
    );
    const ids = tensor([[5, 17, 42, 8]], { dtype: 'i32' });
    const adapted = noGrad(() =>
      PeftModel.fromPretrained(loadModel(model), join(out, 'adapter')).forward({ inputIds: ids }).toNumbers(),
    );
    const merged = noGrad(() => loadModel(join(out, 'merged')).forward({ inputIds: ids }).toNumbers());
    assert.ok(Math.max(...merged.map((v, i) => Math.abs(v - adapted[i]!))) < 1e-5);
  });
});
