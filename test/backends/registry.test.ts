// The backend registry: the default is native when the addon loads, and otherwise js with exactly one
// warning line that says how to get the fast path; VERA_BACKEND forces a choice.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import type { Backend } from '../../src/backends/backend.js';
import {
  BACKEND_CHOICES,
  BACKEND_NAMES,
  backendForDevice,
  type BackendName,
  getBackend,
  isBackendName,
} from '../../src/backends/registry.js';

const REGISTRY = new URL('../../src/backends/registry.js', import.meta.url).href;
const probe = `const r = await import(${JSON.stringify(REGISTRY)}); r.defaultBackend(); r.defaultBackend(); console.log(r.defaultBackend().name);`;
const run = (env: Record<string, string>) =>
  spawnSync(process.execPath, ['--input-type=module', '-e', probe], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });

describe('backend registry', () => {
  test('falls back to js with one warning naming the fix when the addon cannot load', () => {
    const r = run({ VERA_NATIVE_ADDON: '/nonexistent/vera_native.node', VERA_BACKEND: '' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'js');
    const warnings = r.stderr
      .split('\n')
      .filter((l) => l.includes('VERA_NO_NATIVE') || l.includes('native backend unavailable'));
    assert.equal(warnings.length, 1, r.stderr);
    assert.match(warnings[0]!, /npm run build:native/);
  });

  test('VERA_BACKEND=js forces the reference backend', () => {
    const r = run({ VERA_BACKEND: 'js' });
    assert.equal(r.stdout.trim(), 'js');
    assert.equal(r.stderr, '');
  });

  test('BACKEND_NAMES is the one list of names: the type guard, the error messages and getBackend use it', () => {
    assert.deepEqual(BACKEND_NAMES, ['js', 'native', 'cuda']);
    for (const n of BACKEND_NAMES) assert.ok(isBackendName(n));
    assert.ok(!isBackendName('gpu') && !isBackendName('JS') && !isBackendName(''));
    assert.equal(BACKEND_CHOICES, '"js", "native" or "cuda"');
    assert.throws(
      () => getBackend('gpu' as BackendName),
      /^Error: \[backend\] Unknown backend "gpu"; expected "js", "native" or "cuda"$/,
    );
    assert.equal(getBackend('js').name, 'js');
  });

  test('the cuda backend is used only when asked for: where it cannot load, the error says why', () => {
    const r = run({ VERA_BACKEND: 'native' });
    assert.notEqual(r.stdout.trim(), 'cuda');
    assert.equal(backendForDevice('cpu').device, 'cpu');
    assert.throws(() => backendForDevice('tpu'), /Unknown device "tpu"; expected "cpu" or "cuda"/);
    let cuda: Backend | null = null;
    try {
      cuda = backendForDevice('cuda');
    } catch (e) {
      // No GPU, driver or build here: one message that says which.
      assert.match((e as Error).message, /^\[cuda\] The cuda backend is unavailable: /);
    }
    if (cuda) assert.equal(cuda.device, 'cuda');
  });
});
