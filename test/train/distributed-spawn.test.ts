// GPU ranks' plumbing that runs without a GPU: NCCL's id handed from rank 0 to the others over
// MASTER_ADDR:MASTER_PORT (the same bytes on every rank, a rank naming another group size refused, a
// rank that never comes named after the timeout, a bad port named), and the torchrun-style launcher
// of `vera train --nproc N --device cuda` (each rank's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_PORT and
// VERA_CUDA_DEVICE; the first failing rank named and the others stopped; an aborting rank named from
// its file with its message).

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { cudaOrSkip } from '../helpers/cuda.js';
import { exchangeId } from '../../src/train/distributed/rendezvous.js';
import { freePort, spawnRanks } from '../../src/train/distributed/spawn-ranks.js';
import { BIN, fixtureModel, keywordCsv, scratch } from './helpers.js';

const id = Uint8Array.from({ length: 128 }, (_, i) => (i * 37 + 11) % 256);

describe('NCCL id rendezvous', () => {
  test("every rank gets rank 0's 128 bytes, whichever starts first", async () => {
    const env = { MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(await freePort()) };
    // Ranks 1 and 2 ask before rank 0 listens: they retry until it does.
    const late = [exchangeId(1, 3, null, env), exchangeId(2, 3, null, env)];
    await new Promise((r) => setTimeout(r, 300));
    const got = await Promise.all([exchangeId(0, 3, id, env), ...late]);
    for (const g of got) assert.deepEqual(Array.from(g), Array.from(id));
  });

  test('a group of one needs no port; rank 0 must pass a 128-byte id', async () => {
    assert.deepEqual(Array.from(await exchangeId(0, 1, id, {})), Array.from(id));
    await assert.rejects(exchangeId(0, 2, new Uint8Array(5), {}), /128-byte id/);
  });

  test('a rank naming another group size is refused, naming both', async () => {
    const env = { MASTER_PORT: String(await freePort()), VERA_RENDEZVOUS_TIMEOUT_S: '2' };
    const leader = exchangeId(0, 2, id, env);
    await assert.rejects(
      exchangeId(1, 3, null, env),
      /rank 0 leads a group of 2, but this rank says it is rank 1 of 3/,
    );
    await assert.rejects(leader, /rank\(s\) 1 of 2, which never came/);
  });

  test('a rank that never comes is named after the timeout; a bad MASTER_PORT is named', async () => {
    const env = { MASTER_PORT: String(await freePort()), VERA_RENDEZVOUS_TIMEOUT_S: '0.5' };
    await assert.rejects(exchangeId(0, 3, id, env), /waited 0.5 s on port \d+ for rank\(s\) 1, 2 of 3/);
    await assert.rejects(exchangeId(1, 2, null, env), /rank 1 of 2 could not get the NCCL id from rank 0/);
    await assert.rejects(exchangeId(1, 2, null, { MASTER_PORT: 'x' }), /MASTER_PORT must name rank 0's TCP port.*"x"/);
  });
});

describe('spawnRanks (vera train --nproc N --device cuda)', () => {
  const node = (script: string) => [process.execPath, '-e', script];

  test("each rank gets torchrun's variables and its own GPU", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vera-spawn-'));
    try {
      const script = `require('fs').writeFileSync(${JSON.stringify(dir)} + '/' + process.env.RANK, JSON.stringify(process.env))`;
      assert.equal(await spawnRanks({ nproc: 3, command: node(script), say: () => {} }), 0);
      const envs = [0, 1, 2].map(
        (r) => JSON.parse(readFileSync(join(dir, String(r)), 'utf8')) as Record<string, string>,
      );
      envs.forEach((e, r) => {
        assert.equal(e['RANK'], String(r));
        assert.equal(e['LOCAL_RANK'], String(r));
        assert.equal(e['VERA_CUDA_DEVICE'], String(r));
        assert.equal(e['WORLD_SIZE'], '3');
        assert.equal(e['LOCAL_WORLD_SIZE'], '3');
        assert.equal(e['MASTER_ADDR'], '127.0.0.1');
        assert.equal(e['MASTER_PORT'], envs[0]!['MASTER_PORT']);
      });
      assert.ok(Number(envs[0]!['MASTER_PORT']) > 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('the first rank to fail is named and the others are stopped', async () => {
    const lines: string[] = [];
    // Rank 1 exits 3 at once; ranks 0 and 2 would sleep a minute.
    const script = "process.env.RANK === '1' ? process.exit(3) : setTimeout(() => {}, 60000)";
    const t0 = Date.now();
    const code = await spawnRanks({ nproc: 3, command: node(script), say: (l) => lines.push(l) });
    assert.equal(code, 3);
    assert.ok(Date.now() - t0 < 20_000, 'the sleeping ranks were not stopped');
    assert.match(lines.join('\n'), /vera: rank 1 \(pid \d+\) exited with status 3; the other ranks were stopped/);
    assert.match(lines.join('\n'), /continue it with --resume/);
  });

  test('a rank that aborts is named from its file, with its message', async () => {
    const lines: string[] = [];
    const script =
      "if (process.env.RANK === '0') { require('fs').writeFileSync(process.env.VERA_LAUNCH_DIR + '/abort-0', 'out of memory'); process.exit(1) } else setTimeout(() => {}, 60000)";
    assert.equal(await spawnRanks({ nproc: 2, command: node(script), say: (l) => lines.push(l) }), 1);
    assert.match(lines.join('\n'), /vera: rank 0 failed \(out of memory\) and stopped the job/);
  });

  test('a bad rank count is refused', async () => {
    await assert.rejects(spawnRanks({ nproc: 0, command: ['true'] }), /--nproc must be an integer ≥ 1, got 0/);
  });
});

describe('vera train --nproc 2 --device cuda without a GPU', () => {
  // Where the cuda backend loads, the GPU tests (test/cuda/nccl.test.ts) train instead.
  const { skip } = cudaOrSkip();
  test(
    'each rank says why cuda is unavailable; the launcher names the first that failed',
    { skip: skip === false ? 'a GPU is here' : false },
    () => {
      const { dir, cleanup } = scratch('spawn-cli');
      try {
        const r = spawnSync(
          process.execPath,
          [
            BIN,
            ...['train', '--model', fixtureModel(dir, 'gpt2-lm'), '--train_file', keywordCsv(join(dir, 'k.csv'))],
            ...['--method', 'vera', '--r', '8', '--max_steps', '2', '--output_dir', join(dir, 'out')],
            ...['--device', 'cuda', '--nproc', '2'],
          ],
          { encoding: 'utf8', env: { ...process.env, VERA_REQUIRE_CUDA: '' } },
        );
        assert.equal(r.status, 1, r.stderr);
        assert.match(r.stderr, /cuda backend is unavailable/);
        assert.match(r.stderr, /vera: rank [01] \(pid \d+\) exited with status 1; the other ranks were stopped/);
      } finally {
        cleanup();
      }
    },
  );
});
