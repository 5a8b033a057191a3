// A backend that fails to load is reported, never dropped: test files that use testBackends() or the
// conformance suite show a skipped test whose reason is the load error, and VERA_REQUIRE_NATIVE=1
// (what .ci/run sets) turns it into a failure. Runs compiled test files in child processes with the
// addon path pointing nowhere.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

const file = (rel: string) => fileURLToPath(new URL(rel, import.meta.url));
const FILES = {
  helper: file('../ops/host-io.test.js'),
  conformance: file('./conformance-native.test.js'),
  direct: file('./native.test.js'),
};

function runWithoutAddon(path: string, require: boolean) {
  // NODE_TEST_CONTEXT would make the child report to this runner instead of printing TAP.
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', path], {
    encoding: 'utf8',
    env: {
      ...env,
      VERA_NATIVE_ADDON: '/nonexistent/vera_native.node',
      VERA_BACKEND: '',
      VERA_REQUIRE_NATIVE: require ? '1' : '',
    },
  });
  const count = (what: string) => Number(new RegExp(`^# ${what} (\\d+)`, 'm').exec(r.stdout)?.[1] ?? NaN);
  return { status: r.status, out: r.stdout, skipped: count('skipped'), fail: count('fail') };
}

describe('a native backend that does not load', () => {
  for (const [what, path] of Object.entries(FILES)) {
    test(`${what}: a skipped test naming the load error`, () => {
      const r = runWithoutAddon(path, false);
      assert.equal(r.status, 0, r.out);
      assert.ok(r.skipped >= 1, r.out);
      assert.match(r.out, /# SKIP native backend unavailable: .*nonexistent/, r.out);
    });

    test(`${what}: a failure under VERA_REQUIRE_NATIVE=1`, () => {
      const r = runWithoutAddon(path, true);
      assert.notEqual(r.status, 0, r.out);
      assert.match(r.out, /nonexistent/);
    });
  }
});
