// Data-parallel training end to end on CPU: `vera train --nproc 2` (2 MPI ranks on localhost) trains a
// small VeRA run for a few hundred steps and ends with the single-process adapter of the same global
// batch (within 1e-6 when the ranks take whole micro-batches; within rounding when each micro-batch is
// split); SIGKILL of one rank stops the run naming it, with the last checkpoint intact, and the run
// resumed on 2 ranks ends byte-identical to the uninterrupted 2-rank run; resumed on 1 process from the
// 2-rank checkpoint it keeps the global batch; Ctrl-C stops every rank with a checkpoint, and the
// resumed run is byte-identical too. Bad --nproc values are refused naming the flag.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SafetensorsReader } from '../../src/io/safetensors.js';
import { BIN, fixtureModel, keywordCsv, readJsonLines, scratch } from './helpers.js';
import { mpiTest } from './distributed-helpers.js';

let root: string;
let cleanup: () => void;
let base: string[];
before(() => {
  ({ dir: root, cleanup } = scratch('distributed'));
  const gpt2 = fixtureModel(root, 'gpt2-lm');
  const data = keywordCsv(join(root, 'keywords.csv'));
  base = [
    'train',
    ...['--model', gpt2, '--train_file', data, '--method', 'vera', '--r', '16', '--lr', '0.01', '--head_lr', '0.01'],
    ...['--max_steps', '240', '--save_steps', '40', '--logging_steps', '20', '--threads', '1'],
    ...['--validation_fraction', '0.1', '--eval_steps', '80', '--lr_scheduler', 'cosine', '--warmup_steps', '10'],
  ];
});
after(() => cleanup());

/** Global batch 8: 2 micro-batches of 4 (each rank takes one whole) or 1 of 8 (each rank takes 4 examples). */
const WHOLE = ['--batch_size', '4', '--gradient_accumulation_steps', '2'];
const SPLIT = ['--batch_size', '8', '--gradient_accumulation_steps', '1'];

const vera = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });

function tensors(file: string): Map<string, number[]> {
  const r = SafetensorsReader.open(file);
  try {
    return new Map(
      r.names().map((n) => {
        const t = r.tensor(n, { dtype: 'f32' });
        const v = t.toNumbers();
        t.dispose();
        return [n, v];
      }),
    );
  } finally {
    r.close();
  }
}

/** The largest absolute difference between two adapters' tensors (the same names in both). */
function maxDiff(a: string, b: string): number {
  const x = tensors(join(a, 'adapter', 'adapter_model.safetensors'));
  const y = tensors(join(b, 'adapter', 'adapter_model.safetensors'));
  assert.deepEqual([...x.keys()].sort(), [...y.keys()].sort());
  let max = 0;
  for (const [k, v] of x) v.forEach((e, i) => (max = Math.max(max, Math.abs(e - y.get(k)![i]!))));
  return max;
}

const adapterBytes = (out: string) => readFileSync(join(out, 'adapter', 'adapter_model.safetensors'));
const state = (dir: string) =>
  JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')) as Record<string, number>;

function assertCheckpointsComplete(out: string): number[] {
  const steps: number[] = [];
  for (const name of readdirSync(out)) {
    const m = /^checkpoint-(\d+)$/.exec(name);
    if (!m) continue;
    for (const f of ['trainer_state.json', 'training_config.json', 'adapter_config.json'])
      JSON.parse(readFileSync(join(out, name, f), 'utf8'));
    for (const f of ['adapter_model.safetensors', 'optimizer.safetensors'])
      SafetensorsReader.open(join(out, name, f)).close();
    steps.push(Number(m[1]));
  }
  return steps.sort((a, b) => a - b);
}

const exited = (c: ChildProcess) =>
  new Promise<void>((res) => (c.exitCode !== null || c.signalCode !== null ? res() : c.once('exit', () => res())));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The pid of rank `rank` of a job whose command line mentions `tag` (Linux /proc). */
function rankPid(rank: number, tag: string): number | null {
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (!cmd.includes(tag) || !cmd.includes('train')) continue;
      const env = readFileSync(`/proc/${p}/environ`, 'utf8').split('\0');
      if (env.includes(`OMPI_COMM_WORLD_RANK=${rank}`)) return Number(p);
    } catch {
      // gone, or not ours
    }
  }
  return null;
}

describe('vera train --nproc 2 (MPI ranks on localhost)', () => {
  const one = () => join(root, 'one');
  const two = () => join(root, 'two');

  mpiTest('2 ranks taking whole micro-batches end with the single-process adapter (within 1e-6)', () => {
    const a = vera([...base, ...WHOLE, '--output_dir', one()]);
    assert.equal(a.status, 0, a.stderr);
    const b = vera([...base, ...WHOLE, '--output_dir', two(), '--nproc', '2']);
    assert.equal(b.status, 0, b.stderr);
    assert.match(b.stderr, /2 data-parallel ranks share each global batch of 8/);
    const d = maxDiff(one(), two());
    assert.ok(d <= 1e-6, `max |Δ| ${d}`);
    // One summary line (rank 0's), one metrics log with every logging step once, the same counters.
    assert.equal(b.stdout.trim().split('\n').length, 1, b.stdout);
    assert.equal(JSON.parse(b.stdout)['status'], 'completed');
    const steps = (out: string) =>
      readJsonLines(join(out, 'metrics.jsonl'))
        .filter((x) => x['type'] === 'train')
        .map((x) => x['step']);
    assert.deepEqual(steps(two()), steps(one()));
    for (const k of ['step', 'examplesSeen', 'tokensSeen'])
      assert.equal(state(join(two(), 'checkpoint-240'))[k], state(join(one(), 'checkpoint-240'))[k], k);
    const evals = (out: string) =>
      readJsonLines(join(out, 'metrics.jsonl'))
        .filter((x) => x['type'] === 'eval')
        .map((x) => [x['step'], x['eval_accuracy']]);
    assert.deepEqual(evals(two()), evals(one()));
  });

  mpiTest('2 ranks splitting each micro-batch end within float rounding of one process', () => {
    const a = vera([...base, ...SPLIT, '--max_steps', '120', '--output_dir', join(root, 'one-split')]);
    assert.equal(a.status, 0, a.stderr);
    const b = vera([...base, ...SPLIT, '--max_steps', '120', '--output_dir', join(root, 'two-split'), '--nproc', '2']);
    assert.equal(b.status, 0, b.stderr);
    const d = maxDiff(join(root, 'one-split'), join(root, 'two-split'));
    assert.ok(d <= 1e-5, `max |Δ| ${d}`);
  });

  mpiTest(
    'SIGKILL of rank 1 stops the run naming it; resumed on 2 ranks: the uninterrupted adapter, byte for byte; on 1 process: the same global batch',
    async () => {
      if (!existsSync(join(two(), 'adapter')))
        assert.equal(vera([...base, ...WHOLE, '--output_dir', two(), '--nproc', '2']).status, 0);
      if (!existsSync(join(one(), 'adapter'))) assert.equal(vera([...base, ...WHOLE, '--output_dir', one()]).status, 0);
      const out = join(root, 'killed');
      let stderr = '';
      const child = spawn(process.execPath, [BIN, ...base, ...WHOLE, '--output_dir', out, '--nproc', '2'], {
        stdio: ['ignore', 'ignore', 'pipe'],
        // Slow checkpoints (rank 0 writes them; rank 1 waits in the next step's all-reduce).
        env: { ...process.env, VERA_TRAIN_CHECKPOINT_DELAY_MS: '60' },
      });
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const t0 = Date.now();
      let pid: number | null = null;
      while (Date.now() - t0 < 60_000 && child.exitCode === null) {
        if (existsSync(join(out, 'latest'))) pid ??= rankPid(1, out);
        if (pid !== null) break;
        await sleep(20);
      }
      assert.ok(pid !== null, `rank 1 not found; ${stderr}`);
      await sleep(150);
      process.kill(pid, 'SIGKILL');
      await exited(child);
      assert.notEqual(child.exitCode, 0, stderr);
      assert.match(stderr, new RegExp(`vera: rank 1 \\((pid ${pid} )?on \\S+\\) died of signal 9`), stderr);
      assert.match(stderr, /continue it with --resume \(the last checkpoint is intact\)/);
      const saved = assertCheckpointsComplete(out);
      assert.ok(saved.length > 0 && saved.at(-1)! < 240, `checkpoints ${saved}`);
      const latest = readFileSync(join(out, 'latest'), 'utf8').trim();
      assert.ok(saved.map((s) => `checkpoint-${s}`).includes(latest), latest);

      // The same checkpoint resumed by one process.
      const alone = join(root, 'killed-then-one');
      cpSync(out, alone, { recursive: true });

      const rest = vera([...base, ...WHOLE, '--output_dir', out, '--resume', '--nproc', '2']);
      assert.equal(rest.status, 0, rest.stderr);
      assert.ok(adapterBytes(out).equals(adapterBytes(two())), 'byte-identical to the uninterrupted 2-rank run');
      assert.deepEqual(
        readJsonLines(join(out, 'metrics.jsonl'))
          .filter((x) => x['type'] === 'train')
          .map((x) => [x['step'], x['loss']]),
        readJsonLines(join(two(), 'metrics.jsonl'))
          .filter((x) => x['type'] === 'train')
          .map((x) => [x['step'], x['loss']]),
      );

      const single = vera([...base, ...WHOLE, '--output_dir', alone, '--resume']);
      assert.equal(single.status, 0, single.stderr);
      assert.match(single.stderr, new RegExp(`resuming at step ${saved.at(-1)} of`));
      // The global batch is kept: the same examples seen, and the single-process run's adapter.
      for (const k of ['step', 'examplesSeen', 'tokensSeen'])
        assert.equal(state(join(alone, 'checkpoint-240'))[k], state(join(one(), 'checkpoint-240'))[k], k);
      const d = maxDiff(alone, one());
      assert.ok(d <= 1e-6, `max |Δ| ${d}`);
    },
  );
});

describe('vera train --nproc 2: Ctrl-C', () => {
  mpiTest(
    'Ctrl-C stops every rank after its step with a checkpoint; resumed: the uninterrupted adapter, byte for byte',
    async () => {
      const two = join(root, 'two');
      if (!existsSync(join(two, 'adapter')))
        assert.equal(vera([...base, ...WHOLE, '--output_dir', two, '--nproc', '2']).status, 0);
      const out = join(root, 'interrupted');
      let stderr = '';
      // A terminal's Ctrl-C reaches the launcher (the ranks run in mpirun's own process group).
      const child = spawn(process.execPath, [BIN, ...base, ...WHOLE, '--output_dir', out, '--nproc', '2'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      const t0 = Date.now();
      while (Date.now() - t0 < 60_000 && child.exitCode === null && !existsSync(join(out, 'latest'))) await sleep(20);
      assert.ok(existsSync(join(out, 'latest')), `no checkpoint yet; ${stderr}`);
      child.kill('SIGINT');
      await exited(child);
      assert.equal(child.exitCode, 130, stderr);
      assert.match(stderr, /vera: stopping every rank after this step with a checkpoint/);
      assert.doesNotMatch(stderr, /died of signal/);
      const saved = assertCheckpointsComplete(out);
      assert.ok(saved.at(-1)! < 240, `checkpoints ${saved}`);
      assert.equal(readFileSync(join(out, 'latest'), 'utf8').trim(), `checkpoint-${saved.at(-1)}`);
      const rest = vera([...base, ...WHOLE, '--output_dir', out, '--resume', '--nproc', '2']);
      assert.equal(rest.status, 0, rest.stderr);
      assert.match(rest.stderr, new RegExp(`resuming at step ${saved.at(-1)} of`));
      assert.ok(adapterBytes(out).equals(adapterBytes(two)), 'byte-identical to the uninterrupted 2-rank run');
    },
  );
});

describe('vera train --nproc: bad input', () => {
  test('a bad rank count names --nproc; --nproc inside an MPI job and a torchrun-style group are refused', () => {
    for (const v of ['0', 'x', '1.5']) {
      const r = vera([...base, '--output_dir', join(root, 'bad'), '--nproc', v]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, new RegExp(`--nproc must be an integer ≥ 1 \\(ranks on this machine\\), got "${v}"`));
    }
    const missing = vera([...base, '--output_dir', join(root, 'bad'), '--nproc']);
    assert.match(missing.stderr, /--nproc needs a number of ranks/);
    const nested = vera([...base, '--output_dir', join(root, 'bad'), '--nproc', '2'], {
      OMPI_COMM_WORLD_RANK: '0',
      OMPI_COMM_WORLD_SIZE: '2',
    });
    assert.equal(nested.status, 1);
    assert.match(nested.stderr, /--nproc 2 starts its own ranks, but this process is already rank 0 of 2/);
    const torchrun = vera([...base, '--output_dir', join(root, 'bad')], { RANK: '0', WORLD_SIZE: '2' });
    assert.equal(torchrun.status, 1);
    assert.match(torchrun.stderr, /CPU ranks join through MPI: start them with mpirun -np 2/);
    const noMpi = vera([...base, '--output_dir', join(root, 'bad'), '--nproc', '2'], {
      VERA_MPI_ADDON: '/nonexistent/vera_mpi.node',
    });
    assert.equal(noMpi.status, 1);
    assert.match(noMpi.stderr, /^vera: --nproc 2 starts MPI ranks, but MPI support is not built/m);
    assert.ok(!existsSync(join(root, 'bad', 'adapter')));
  });
});
