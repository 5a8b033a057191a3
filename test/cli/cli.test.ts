// The `vera` command: help, the demo end to end (a short run), and clean errors with exit codes.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

const BIN = fileURLToPath(new URL('../../../bin/vera.js', import.meta.url));
const vera = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });

describe('vera CLI', () => {
  test('--help lists the commands', () => {
    const r = vera('--help');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /Commands:[\s\S]*demo/);
    assert.match(vera('demo', '--help').stdout, /--steps N/);
  });

  test('demo trains and reports a held-out accuracy', () => {
    const r = vera('demo', '--steps', '60');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /step {3}50 {2}loss \d+\.\d+/);
    const acc = /exact-match accuracy .*: ([\d.]+)%/.exec(r.stdout);
    assert.ok(acc, r.stdout);
  });

  test('bad input gets a one-line error and a non-zero exit', () => {
    const unknown = vera('frobnicate');
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
    const bad = vera('demo', '--steps', 'many');
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^vera: --steps must be a non-negative integer, got "many"\n$/);
  });
});
