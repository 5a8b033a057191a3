// NativeBackend.lowerPriority: a worker thread lowers its own and its kernel threads' priority (the
// serve engine does, so the HTTP thread runs first); the main thread's stays; bad values are refused.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { getPriority } from 'node:os';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { getBackend } from '../../src/backends/registry.js';
import { nativeSkip } from '../helpers/backends.js';

const skip = process.platform !== 'linux' ? 'Linux only' : nativeSkip();

/** Field `field` (1-based, as proc(5) numbers them) of each of this process's threads' stat. */
function threadStat(field: number): number[] {
  return readdirSync('/proc/self/task').map((tid) => {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[field - 3]);
  });
}
/** Nice values of this process's threads (field 19). */
const threadNices = () => threadStat(19);
/** Scheduling policies of this process's threads (field 41; SCHED_IDLE is 5). */
const threadPolicies = () => threadStat(41);

async function inWorker(call: string, check: (ok: boolean) => void): Promise<void> {
  const url = new URL('../../src/backends/registry.js', import.meta.url).href;
  const w = new Worker(
    `import(${JSON.stringify(url)}).then(async (r) => {
       const b = r.getBackend('native');
       b.setThreads(2);
       const ok = ${call};
       require('node:worker_threads').parentPort.postMessage(ok);
       await new Promise((res) => setTimeout(res, 2000));
     });`,
    { eval: true },
  );
  const ok = await new Promise<boolean>((res, rej) => {
    w.once('message', res);
    w.once('error', rej);
  });
  try {
    check(ok);
  } finally {
    await w.terminate();
  }
}

test('lowerPriority in a worker: its threads at nice 7, the main thread unchanged', { skip }, async () => {
  const before = getPriority();
  await inWorker('b.lowerPriority(7)', (ok) => {
    assert.equal(ok, true);
    assert.equal(getPriority(), before, 'the main thread keeps its priority');
    assert.ok(threadNices().filter((n) => n === 7).length >= 2, `thread nice values ${threadNices().join(' ')}`);
  });
});

test('lowerPriority(nice, idle) in a worker: its threads under SCHED_IDLE, the main thread not', { skip }, async () => {
  const idleBefore = threadPolicies().filter((p) => p === 5).length;
  await inWorker('b.lowerPriority(3, true)', (ok) => {
    assert.equal(ok, true);
    assert.ok(
      threadPolicies().filter((p) => p === 5).length >= idleBefore + 2,
      `policies ${threadPolicies().join(' ')}`,
    );
    const main = readFileSync('/proc/self/stat', 'utf8');
    assert.equal(Number(main.slice(main.lastIndexOf(')') + 2).split(' ')[38]), 0, 'the main thread stays SCHED_OTHER');
  });
});

test('lowerPriority refuses a value outside 0..19, naming it', { skip }, () => {
  const b = getBackend('native');
  assert.throws(() => b.lowerPriority!(25), /nice value must be an integer in 0\.\.19, got 25/);
  assert.throws(() => b.lowerPriority!(-1), /got -1/);
});
