// Data-parallel scaling on several GPUs of one host: the Llama-2-7B-shaped VeRA r=1024 step of
// bench/cuda.ts (4×512 tokens per GPU, bf16 frozen weights, AdamW) on 1, 2, 4 and 8 ranks (as many as
// the host has), one process per GPU started as `vera train --nproc N --device cuda` starts them
// (spawn-ranks.ts: torchrun's variables, NCCL's id over MASTER_ADDR:MASTER_PORT), the gradient arena
// all-reduced through NCCL every step. Reported per rank count: tokens/s per GPU and that against one
// GPU (scaling efficiency; goal ≥ 0.95). One rank still goes through NCCL, so a one-GPU host runs the
// whole path. VERA_BENCH_DP_CASE picks another case of bench/cuda.ts.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getBackend } from '../src/backends/registry.js';
import { joinNccl } from '../src/train/distributed/nccl.js';
import { spawnRanks } from '../src/train/distributed/spawn-ranks.js';
import { worldFromEnv } from '../src/train/distributed/world.js';
import { CASES, type TrainCase, trainOurs } from './cuda.js';
import { type BenchRow, emit, note } from './lib.js';

const SELF = fileURLToPath(import.meta.url);

function pickCase(): TrainCase {
  const name = process.env['VERA_BENCH_DP_CASE'] ?? 'llama7b-vera1024-all';
  const c = CASES.find((x): x is TrainCase => x.kind === 'train' && x.name === name);
  if (!c) throw new Error(`[bench cuda-dp] unknown training case "${name}" (bench/cuda.ts CASES)`);
  return c;
}

/** One rank: joins NCCL, times the case's steps, and rank 0 writes its tokens/s to `out`. */
async function rank(out: string): Promise<void> {
  const backend = getBackend('cuda');
  const group = await joinNccl(backend, worldFromEnv());
  const m = trainOurs(pickCase(), backend, Number(process.env['VERA_BENCH_STEPS'] ?? 10), 3, group);
  // Every rank's tokens/s, so the slowest one (the step's pace) is what rank 0 reports.
  const all = new Float64Array(group.size);
  all[group.rank] = m.tokensPerS;
  group.allReduce(all, 'sum');
  if (group.rank === 0)
    writeFileSync(out, JSON.stringify({ perRank: Array.from(all), peakGiB: m.peakGiB, loss: m.loss }));
  group.finalize();
}

export async function run(): Promise<BenchRow[]> {
  let gpus = 0;
  try {
    gpus = Number(getBackend('cuda').info?.()['deviceCount'] ?? 1);
  } catch (e) {
    note(`cuda-dp: skipped: ${(e as Error).message}`);
    return [];
  }
  const c = pickCase();
  const gpu = getBackend('cuda').info?.()['name'] ?? null;
  const dir = mkdtempSync(join(tmpdir(), 'vera-bench-dp-'));
  const rows: BenchRow[] = [];
  let one: number | null = null;
  try {
    for (const n of [1, 2, 4, 8].filter((k) => k <= Math.max(1, gpus))) {
      note(`cuda-dp: ${c.name} on ${n} GPU(s)`);
      const out = join(dir, `${n}.json`);
      const code = await spawnRanks({ nproc: n, command: [process.execPath, SELF, '--rank', out] });
      if (code !== 0) {
        note(`cuda-dp: ${n} ranks failed (exit ${code})`);
        continue;
      }
      const r = JSON.parse(readFileSync(out, 'utf8')) as { perRank: number[]; peakGiB: number | null; loss: number };
      const perGpu = Math.min(...r.perRank);
      one ??= n === 1 ? perGpu : null;
      rows.push(
        emit({
          bench: 'cuda-dp',
          case: `${c.label}: ${n} GPU${n > 1 ? 's' : ''} (NCCL), tokens/s per GPU`,
          ours: perGpu,
          peer: one,
          peer_name: 'vera-ts on one GPU (NCCL, one rank)',
          unit: 'tokens/s (higher is better)',
          gpu,
          ranks: n,
          per_rank: r.perRank,
          peak_gib: r.peakGiB,
          loss: r.loss,
        }),
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

if (process.argv[1] === SELF && process.argv[2] === '--rank') await rank(process.argv[3]!);
