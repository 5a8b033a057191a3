// Every command's output reaches a pipe in full before the process exits: a pipe takes 64 KiB at a
// time and node queues the rest, which process.exit used to drop (a pipe reader got exactly 65,536
// bytes). The CLI now exits through exitFlushed, which waits for stdout and stderr to drain.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { flushed } from '../../src/cli/common.js';
import { BIN } from '../helpers/cli.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Runs `vera ARGS` with stdout a pipe that this process reads only after `delayMs`, so the pipe fills first. */
function runThroughPipe(
  args: string[],
  delayMs: number,
): Promise<{ status: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.pause();
    setTimeout(() => child.stdout.resume(), delayMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout: Buffer.concat(out), stderr: err }));
  });
}

describe('output through a pipe', () => {
  test('vera logits writes a > 1 MB JSON object in full to a slow pipe reader', async () => {
    // The shipped base model: vocab 4,096, so 40 positions are 163,840 logits (about 3 MB of JSON).
    const ids = Array.from({ length: 40 }, (_, i) => 1 + i * 13).join(',');
    const r = await runThroughPipe(
      ['logits', '--model', join(ROOT, 'assets/base-model'), '--ids', ids, '--threads', '1'],
      300,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.stdout.length > 1_000_000, `only ${r.stdout.length} bytes arrived`);
    const text = r.stdout.toString('utf8');
    assert.ok(text.endsWith('}\n'), 'the JSON line ends');
    const out = JSON.parse(text) as { shape: number[]; data: number[] };
    assert.deepEqual(out.shape, [40, 4096]);
    assert.equal(out.data.length, 40 * 4096);
  });

  test('an error after a large output still reaches stderr, and the exit status is kept', async () => {
    const r = await runThroughPipe(['logits', '--model', join(ROOT, 'assets/base-model'), '--ids', '1,x'], 100);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^vera: --ids must be comma-separated non-negative integers, got "1,x"\n$/);
  });

  test('flushed resolves only once every earlier write is done', async () => {
    const done: string[] = [];
    const slow = new Writable({
      highWaterMark: 4,
      write(chunk: Buffer, _enc, cb) {
        setTimeout(() => {
          if (chunk.length > 0) done.push(chunk.toString());
          cb();
        }, 20);
      },
    });
    slow.write('first');
    slow.write('second');
    assert.ok(slow.writableLength > 0);
    await flushed(slow);
    assert.deepEqual(done, ['first', 'second']);
    assert.equal(slow.writableLength, 0);
    const t0 = performance.now();
    await flushed(slow); // nothing pending: at once
    assert.ok(performance.now() - t0 < 15);
  });
});
