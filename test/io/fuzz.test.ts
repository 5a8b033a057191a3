// The safetensors fuzzer (bench/safetensors-fuzz.ts) on a few thousand mutated files within a time
// budget: each case must load every tensor or throw SafetensorsError naming the file, never another
// error, and no case may take long (a hang). `npm run bench -- safetensors-fuzz` runs 100,000 cases.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fuzz } from '../../bench/safetensors-fuzz.js';

const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'vera-st-fuzz-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('mutated files load or throw SafetensorsError, quickly', (t) => {
  const stats = fuzz({ cases: 8000, seed: 42, dir, budgetMs: 5000 });
  t.diagnostic(
    `${stats.cases} cases in ${stats.seconds.toFixed(2)} s: ${stats.opened} headers accepted, ${stats.tensorsLoaded} tensors loaded, ` +
      `${stats.safetensorsErrors} SafetensorsErrors, slowest case ${stats.maxCaseMs.toFixed(1)} ms`,
  );
  assert.deepEqual(stats.examples, [], 'errors other than SafetensorsError');
  assert.equal(stats.otherErrors, 0);
  assert.ok(stats.cases >= 1000, `only ${stats.cases} cases ran within the budget`);
  assert.ok(stats.opened > stats.cases / 20, 'enough cases reach the tensor-reading paths');
  assert.ok(stats.maxCaseMs < 1000, `a case took ${stats.maxCaseMs} ms`);
});
