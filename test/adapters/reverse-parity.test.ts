// The reverse direction: adapters and merged models written by vera-ts load in PEFT/transformers and
// give vera-ts' logits. gen_adapters.py --check-ours recorded that for the files in
// fixtures/ours (peft-check.json); this test requires every recorded check to have passed, and
// rebuilds the files with the current code to require they are still the files PEFT checked.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { OURS, OURS_CASES, writeCase } from '../parity/ours.js';

const check = JSON.parse(readFileSync(join(OURS, 'peft-check.json'), 'utf8')) as {
  peft: string;
  cases: {
    name: string;
    adapted: { ok: boolean; max_abs_diff: number };
    merged?: { ok: boolean; max_abs_diff: number };
  }[];
};
const ours = JSON.parse(readFileSync(join(OURS, 'ours.json'), 'utf8')) as {
  cases: { name: string; adapted: number[]; merged: number[] | null }[];
};

/** adapter_config.json without the machine-specific base path. */
const configOf = (dir: string) => {
  const j = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  delete j['base_model_name_or_path'];
  return j;
};

describe(`vera-ts adapters load in PEFT ${check.peft}`, () => {
  OURS_CASES.forEach((c, i) => {
    test(`${c.name}: PEFT gives our logits, and today's code writes the same files`, () => {
      const recorded = check.cases.find((x) => x.name === c.name);
      assert.ok(recorded, `no PEFT check recorded for ${c.name}`);
      assert.ok(recorded.adapted.ok, `PEFT's logits differ by ${recorded.adapted.max_abs_diff}`);
      if (c.merged)
        assert.ok(
          recorded.merged?.ok,
          `transformers' logits of the merged model differ by ${recorded.merged?.max_abs_diff}`,
        );
      const dir = mkdtempSync(join(tmpdir(), 'vera-ours-'));
      const { adapted, merged } = writeCase(c, dir, i);
      const want = ours.cases.find((x) => x.name === c.name)!;
      assert.deepEqual(adapted, want.adapted);
      assert.deepEqual(merged, want.merged);
      assert.deepEqual(
        readFileSync(join(dir, c.name, 'adapter_model.safetensors')),
        readFileSync(join(OURS, c.name, 'adapter_model.safetensors')),
      );
      assert.deepEqual(configOf(join(dir, c.name)), configOf(join(OURS, c.name)));
      if (c.merged) {
        for (const f of readdirSync(join(OURS, `${c.name}-merged`)).filter((f) => f.endsWith('.safetensors'))) {
          assert.deepEqual(
            readFileSync(join(dir, `${c.name}-merged`, f)),
            readFileSync(join(OURS, `${c.name}-merged`, f)),
            f,
          );
        }
      }
    });
  });
});
