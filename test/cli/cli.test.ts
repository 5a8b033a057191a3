// The `vera` command: help, the demo end to end (a short run), and clean errors with exit codes.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

const BIN = fileURLToPath(new URL('../../../bin/vera.js', import.meta.url));
const vera = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

describe('vera CLI', () => {
  test('--help lists the commands', () => {
    const r = vera('--help');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /Commands:[\s\S]*demo[\s\S]*train/);
    assert.match(vera('demo', '--help').stdout, /--methods LIST/);
  });

  test('demo fine-tunes the shipped base and prints the comparison table', () => {
    const out = mkdtempSync(join(tmpdir(), 'vera-demo-'));
    const r = vera('demo', '--methods', 'vera,head', '--epochs', '1', '--out', out);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\| method \| trainable params \| adapter bytes \| val\. accuracy \| train time \|/);
    const rows = [...r.stdout.matchAll(/^\| (vera|head) +\| +([\d,]+) \| +([\d,]+) \| +([\d.]+)% \|/gm)];
    assert.deepEqual(
      rows.map((m) => m[1]),
      ['vera', 'head'],
    );
    // VeRA: 4 layers × ((768 + 256) + (256 + 256)) λ values, plus the 2×256 head; head-only: the head.
    assert.equal(rows[0]![2], '6,656');
    assert.equal(rows[1]![2], '512');
    for (const m of rows) assert.ok(Number(m[4]) > 55, `${m[1]} accuracy ${m[4]}% is no better than chance`);
    assert.ok(existsSync(join(out, 'vera/adapter/adapter_model.safetensors')));
  });

  test('bad input gets a one-line error and a non-zero exit', () => {
    const unknown = vera('frobnicate');
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
    const bad = vera('demo', '--epochs', 'many');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^vera: --epochs must be an integer ≥ 0, got "many"\n$/);
    assert.match(vera('demo', '--methods', 'dora').stderr, /unknown method "dora"/);
  });
});
