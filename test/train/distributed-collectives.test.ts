// The process group: SingleProcess, shardRange, the environment's group (worldFromEnv, processGroup's
// one-line refusals), mpirun's arguments, and the MPI collectives on 2 ranks under mpirun (allreduce
// sum/max/min equal to the sums, broadcast, allgather of unequal lengths, a backend view reduced in
// place, a bad op refused), and a rank that aborts ends the job with a line naming it.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { SingleProcess, allGatherJson, shardRange } from '../../src/train/distributed/collective.js';
import { launchRanks, mpirunArgs } from '../../src/train/distributed/launch.js';
import { processGroup, worldFromEnv } from '../../src/train/distributed/world.js';
import { ROOT } from './helpers.js';
import { mpiTest } from './distributed-helpers.js';

const CHILD = join(ROOT, 'dist', 'test', 'train', 'distributed-child.js');

describe('process group', () => {
  test('a single process: collectives leave the data, allGather returns its own bytes', () => {
    const g = new SingleProcess();
    const a = new Float32Array([1, 2]);
    g.allReduce(a);
    g.broadcast(a, 0);
    assert.deepEqual(Array.from(a), [1, 2]);
    assert.deepEqual(allGatherJson(g, { x: 1 }), [{ x: 1 }]);
    assert.equal(g.size, 1);
  });

  test('shardRange splits n examples into contiguous shards, the first n mod size one longer', () => {
    const shards = (n: number, size: number) => Array.from({ length: size }, (_, r) => shardRange(n, r, size));
    assert.deepEqual(shards(8, 2), [
      [0, 4],
      [4, 8],
    ]);
    assert.deepEqual(shards(7, 3), [
      [0, 3],
      [3, 5],
      [5, 7],
    ]);
    assert.deepEqual(shards(1, 2), [
      [0, 1],
      [1, 1],
    ]);
    for (const [n, size] of [
      [0, 3],
      [13, 4],
      [5, 8],
    ] as const) {
      const s = shards(n, size);
      assert.equal(s[0]![0], 0);
      assert.equal(s.at(-1)![1], n);
      s.slice(1).forEach(([from], i) => assert.equal(from, s[i]![1]));
    }
  });

  test('worldFromEnv: mpirun, PMI and torchrun-style variables; processGroup refuses a group it cannot join', () => {
    assert.deepEqual(worldFromEnv({}), { launcher: null, rank: 0, size: 1, localRank: 0, source: null });
    assert.deepEqual(
      worldFromEnv({ OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_LOCAL_RANK: '1' }),
      { launcher: 'mpi', rank: 1, size: 4, localRank: 1, source: 'OMPI_COMM_WORLD_RANK' },
    );
    assert.equal(worldFromEnv({ PMI_RANK: '2', PMI_SIZE: '3' }).size, 3);
    assert.deepEqual(worldFromEnv({ RANK: '0', WORLD_SIZE: '2', LOCAL_RANK: '0' }), {
      launcher: 'env',
      rank: 0,
      size: 2,
      localRank: 0,
      source: 'RANK',
    });
    assert.throws(
      () => processGroup({ RANK: '0', WORLD_SIZE: '2' }),
      /RANK=0 WORLD_SIZE=2 .*start them with mpirun -np 2 \(or vera train --nproc 2\)/,
    );
    assert.equal(processGroup({ RANK: '0', WORLD_SIZE: '1' }).size, 1);
  });

  test('mpirun arguments: ranks on this host, unbound, threads per rank passed on', () => {
    const args = mpirunArgs(3, ['node', 'x.js'], 2);
    assert.deepEqual(args.slice(-2), ['node', 'x.js']);
    assert.ok(args.includes('--oversubscribe') && args.includes('VERA_NUM_THREADS=2'));
    assert.equal(args[args.indexOf('-np') + 1], '3');
    assert.equal(args.includes('--allow-run-as-root'), process.getuid?.() === 0);
    assert.ok(!args.some((a) => a.startsWith('VERA_LAUNCH_DIR')));
    assert.ok(mpirunArgs(2, ['x'], 1, '/tmp/d').includes('VERA_LAUNCH_DIR=/tmp/d'));
  });

  test('launchRanks refuses a bad rank count and a missing MPI addon, naming --nproc', async () => {
    await assert.rejects(launchRanks({ nproc: 0, command: ['true'] }), /--nproc must be an integer ≥ 1, got 0/);
    const saved = process.env['VERA_MPI_ADDON'];
    process.env['VERA_MPI_ADDON'] = '/nonexistent/vera_mpi.node';
    try {
      // The addon may already be loaded in this process: a fresh one reads the override.
      const r = spawnSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `import { launchRanks } from ${JSON.stringify(join(ROOT, 'dist/src/train/distributed/launch.js'))};
           launchRanks({ nproc: 2, command: ['true'] }).catch((e) => { console.error(e.message); process.exit(1); });`,
        ],
        { encoding: 'utf8' },
      );
      assert.equal(r.status, 1);
      assert.match(
        r.stderr,
        /--nproc 2 starts MPI ranks, but MPI support is not built \(\/nonexistent\/vera_mpi\.node/,
      );
    } finally {
      if (saved === undefined) delete process.env['VERA_MPI_ADDON'];
      else process.env['VERA_MPI_ADDON'] = saved;
    }
  });
});

describe('MPI collectives on 2 ranks', () => {
  mpiTest('allreduce equals the sum (max, min), broadcast, allgather, a backend view in place', () => {
    const r = spawnSync('mpirun', mpirunArgs(2, [process.execPath, CHILD], 1), { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const ranks = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .sort((a, b) => (a['rank'] as number) - (b['rank'] as number));
    assert.equal(ranks.length, 2, r.stdout + r.stderr);
    for (const x of ranks) {
      assert.equal(x['size'], 2);
      assert.match(x['library'] as string, /MPI/);
      // rank 0: [1, 0, 0, 1e-3], rank 1: [2, 0.25, -1, 1e-3], summed in f32.
      assert.deepEqual(x['f32'], [3, 0.25, -1, Math.fround(Math.fround(1e-3) + Math.fround(1e-3))]);
      assert.deepEqual(x['f64max'], [1, 0, 10.5]);
      assert.deepEqual(x['f64min'], [0, -1, 0.5]);
      assert.deepEqual(x['bcast'], [107, 1]);
      assert.deepEqual(x['bytes'], [[0], [10, 11]]);
      assert.deepEqual(x['json'], [
        { rank: 0, text: '' },
        { rank: 1, text: 'é' },
      ]);
      assert.equal(x['root'], 42.5);
      // Elements 0–1 are each rank's own; 2–5 are summed: (k)(1) + (k)(2).
      assert.deepEqual(x['view'], [1, 2].map((k) => k * ((x['rank'] as number) + 1)).concat([9, 12, 15, 18]));
      assert.match(x['badOp'] as string, /allreduce: op must be 'sum', 'max' or 'min', got 'prod'/);
    }
    assert.deepEqual(ranks[0]!['f32'], ranks[1]!['f32']);
  });

  mpiTest('a rank that aborts ends the job; the launcher names it', async () => {
    const lines: string[] = [];
    const code = await launchRanks({
      nproc: 2,
      command: [process.execPath, CHILD, 'abort'],
      threadsPerRank: 1,
      say: (l) => lines.push(l),
    });
    assert.notEqual(code, 0);
    assert.match(lines.join('\n'), /vera: rank 1 failed \(its message is above\) and aborted the job/);
  });

  mpiTest('a rank that aborts is named from its file when mpirun prints no report', async () => {
    // Open MPI 4.1 can fail to print its MPI_ABORT report ("Data unpack would read past end of
    // buffer"): a launcher that stands in for such an mpirun leaves only rank 1's abort file.
    const dir = mkdtempSync(join(tmpdir(), 'vera-fake-mpirun-'));
    const fake = join(dir, 'mpirun');
    writeFileSync(
      fake,
      '#!/bin/sh\nfor a; do case "$a" in VERA_LAUNCH_DIR=*) echo gives up > "${a#VERA_LAUNCH_DIR=}/abort-1";; esac; done\nexit 3\n',
    );
    chmodSync(fake, 0o755);
    const lines: string[] = [];
    try {
      const code = await launchRanks({
        nproc: 2,
        command: ['true'],
        threadsPerRank: 1,
        env: { ...process.env, VERA_MPIRUN: fake },
        say: (l) => lines.push(l),
      });
      assert.equal(code, 3);
      assert.match(lines.join('\n'), /vera: rank 1 failed \(its message is above\) and aborted the job/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
