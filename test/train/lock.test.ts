// The output directory lock: one run per directory, in this process or another; a lock left by a killed
// process (or cut short) is taken over; a lock from another host is not guessed at; train() holds it.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { LOCK_FILE, lockOutputDir } from '../../src/train/lock.js';
import { train } from '../../src/train/trainer.js';
import { fixtureModel, keywordCsv, quietSink, runConfig, scratch } from './helpers.js';

const { dir: root, cleanup } = scratch('lock');
after(() => cleanup());
const LOCK_JS = fileURLToPath(new URL('../../src/train/lock.js', import.meta.url));

/** A child process that takes the lock of `dir` and waits; resolves once it holds it. */
function holder(dir: string): Promise<ReturnType<typeof spawn>> {
  const code = `import(${JSON.stringify(LOCK_JS)}).then((m) => { m.lockOutputDir(${JSON.stringify(dir)}); console.log('locked'); setInterval(() => {}, 1000); });`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('locked') && resolve(child));
    child.on('exit', (c) => reject(new Error(`holder exited with ${c}`)));
  });
}

const exited = (child: ReturnType<typeof spawn>) => new Promise((resolve) => child.once('exit', resolve));

describe('output directory lock', () => {
  test('one holder at a time in this process; released, it can be taken again', () => {
    const dir = join(root, 'a');
    const release = lockOutputDir(dir);
    const owner = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')) as { pid: number };
    assert.equal(owner.pid, process.pid);
    assert.throws(() => lockOutputDir(dir), /is in use by another training run/);
    release();
    assert.ok(!existsSync(join(dir, LOCK_FILE)));
    lockOutputDir(dir)();
  });

  test('another live process holds it: refused naming that process; killed, its lock is taken over', async () => {
    const dir = join(root, 'b');
    const child = await holder(dir);
    assert.throws(() => lockOutputDir(dir), new RegExp(`in use by another training run \\(process ${child.pid} on `));
    child.kill('SIGKILL');
    await exited(child);
    const release = lockOutputDir(dir);
    assert.equal((JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')) as { pid: number }).pid, process.pid);
    release();
  });

  test('a lock cut short is taken over; one from another host is not', () => {
    const dir = join(root, 'c');
    lockOutputDir(dir)();
    writeFileSync(join(dir, LOCK_FILE), '{"pid": 12');
    lockOutputDir(dir)();
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, host: 'elsewhere', started: 'x' }));
    assert.throws(
      () => lockOutputDir(dir),
      /locked by process 1 on another host \(elsewhere\); if no run uses it any more, delete .*\.vera-lock/,
    );
  });

  test('train() holds the lock while it runs and gives it back', async () => {
    const out = join(root, 'run');
    const config = runConfig({
      model: fixtureModel(root, 'gpt2-lm'),
      train_file: keywordCsv(join(root, 'k.csv'), 16),
      method: 'head',
      max_steps: 1,
      batch_size: 8,
      output_dir: out,
    });
    const release = lockOutputDir(out);
    await assert.rejects(train({ config, sink: quietSink() }), /is in use by another training run/);
    release();
    const result = await train({ config, sink: quietSink() });
    assert.equal(result.status, 'completed');
    assert.ok(!existsSync(join(out, LOCK_FILE)));
  });
});
