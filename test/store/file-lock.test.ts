// The folder store's FileLock: held and released around synchronous work; a lock left by a dead
// process is taken over, as is an empty one (an older version killed between creating and writing it)
// once it is a second old; a lock held by a live process makes a waiter fail after its timeout, naming
// the holder; no temporary file is left behind.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { FileLock } from '../../src/serve/store/fs-util.js';

const dir = mkdtempSync(join(tmpdir(), 'vera-lock-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('FileLock', () => {
  test('held around the work with this pid in it, then removed; nested holds re-enter', () => {
    const path = join(dir, 'a.lock');
    const lock = new FileLock(path, 200);
    const seen = lock.hold(() => {
      assert.equal(readFileSync(path, 'utf8'), String(process.pid));
      return lock.hold(() => 'inner');
    });
    assert.equal(seen, 'inner');
    assert.equal(existsSync(path), false);
    assert.deepEqual(readdirSync(dir), []);
  });

  test("a dead process's lock and an old empty one are taken over", () => {
    const path = join(dir, 'b.lock');
    writeFileSync(path, '999999999'); // no such process
    assert.equal(
      new FileLock(path, 200).hold(() => 1),
      1,
    );
    writeFileSync(path, '');
    const old = new Date(Date.now() - 5000);
    utimesSync(path, old, old);
    assert.equal(
      new FileLock(path, 200).hold(() => 2),
      2,
    );
    assert.deepEqual(readdirSync(dir), []);
  });

  test('a live holder makes a waiter fail after its timeout, naming it', () => {
    const path = join(dir, 'c.lock');
    writeFileSync(path, '1'); // init: alive (or EPERM), never ours
    const t0 = Date.now();
    assert.throws(() => new FileLock(path, 150).hold(() => 0), /c\.lock: held by process 1 for over 150 ms/);
    assert.ok(Date.now() - t0 >= 150);
    // A fresh empty lock (its writer may still be writing) is waited for, not taken over.
    writeFileSync(path, '');
    assert.throws(() => new FileLock(path, 100).hold(() => 0), /held by process 0/);
    rmSync(path);
    assert.deepEqual(readdirSync(dir), []);
  });
});
