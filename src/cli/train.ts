// `vera train`: a run config from --config and flags (flags win; with --resume the checkpoint's own
// config is the base), Ctrl-C stops cleanly after the current step with a checkpoint, and the outcome
// is one JSON line on stdout (progress and log lines go to stderr).

import { join } from 'node:path';
import { newestCheckpoint, readCheckpointConfig, recoverDirs } from '../train/checkpoint.js';
import {
  ConfigError,
  type TrainConfig,
  parseFlags,
  readConfigFile,
  resolveConfig,
  trainUsage,
} from '../train/config.js';
import { train } from '../train/trainer.js';
import { getBackend } from '../backends/registry.js';
import type { Collective } from '../train/distributed/collective.js';
import { launchRanks } from '../train/distributed/launch.js';
import { joinNccl } from '../train/distributed/nccl.js';
import { spawnRanks } from '../train/distributed/spawn-ranks.js';
import { processGroup, worldFromEnv } from '../train/distributed/world.js';
import { selectBackend, writeOut } from './common.js';

/** Whether the run computes on the GPU (flags first, then VERA_BACKEND / VERA_DEVICE), without loading it. */
function onCuda(cfg: TrainConfig): boolean {
  if (cfg.backend !== null) return cfg.backend === 'cuda';
  if (cfg.device !== null) return cfg.device === 'cuda';
  const forced = process.env['VERA_BACKEND'];
  return forced ? forced === 'cuda' : process.env['VERA_DEVICE'] === 'cuda';
}

/** Exit status per outcome: finished (or stopped early by patience) 0, diverged 1, interrupted 130. */
const EXIT = { completed: 0, 'early-stopped': 0, diverged: 1, interrupted: 130 } as const;

/** --nproc N (or --nproc=N) taken out of the arguments: the launcher's own flag, not a run option. */
export function takeNproc(args: readonly string[]): { nproc: number | null; rest: string[] } {
  const rest: string[] = [];
  let nproc: number | null = null;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const m = /^--nproc(?:=(.*))?$/.exec(a);
    if (!m) {
      rest.push(a);
      continue;
    }
    const v = m[1] ?? args[++i];
    if (v === undefined) throw new ConfigError('--nproc needs a number of ranks');
    const n = Number(v);
    if (v.trim() === '' || !Number.isSafeInteger(n) || n < 1)
      throw new ConfigError(`--nproc must be an integer ≥ 1 (ranks on this machine), got ${JSON.stringify(v)}`);
    nproc = n;
  }
  return { nproc, rest };
}

export async function trainCommand(argv: string[]): Promise<number> {
  const { nproc, rest: args } = takeNproc(argv);
  const world = worldFromEnv();
  const { given, config, help } = parseFlags(args);
  if (help) {
    await writeOut(trainUsage());
    return 0;
  }
  const fromFile = config === null ? {} : readConfigFile(config);
  const layers: Partial<TrainConfig>[] = [fromFile, given];
  const resume = given.resume ?? fromFile.resume ?? false;
  const outputDir = given.output_dir ?? fromFile.output_dir;
  if (resume) {
    if (!outputDir) throw new ConfigError('--resume needs --output_dir (the run to continue)');
    recoverDirs(outputDir);
    const last = newestCheckpoint(outputDir);
    if (last) layers.unshift(readCheckpointConfig(last.dir));
    else if (world.rank === 0)
      process.stderr.write(`vera: no checkpoint in ${outputDir} yet; starting the run from the beginning\n`);
  }
  const cfg = resolveConfig(...layers);
  const cuda = onCuda(cfg);
  const self = [process.execPath, ...process.execArgv, process.argv[1]!, 'train', ...args];
  // GPU ranks: one process per GPU, started here as torchrun starts them (NCCL; no MPI needed).
  if (nproc !== null && cuda) {
    if (world.launcher !== null)
      throw new ConfigError(
        `--nproc ${nproc} starts its own ranks, but this process is already rank ${world.rank} of ${world.size} (${world.source}); leave --nproc out`,
      );
    return spawnRanks({ nproc, command: self });
  }
  // A rank started by torchrun (or another launcher setting LOCAL_RANK) drives the GPU of its local rank.
  if (cuda && world.launcher === 'env' && !process.env['VERA_CUDA_DEVICE'])
    process.env['VERA_CUDA_DEVICE'] = String(world.localRank);
  // The backend loads now, so one that cannot (--device cuda without a GPU) fails as one line, before the run starts.
  selectBackend(cfg.backend ?? undefined, undefined, cfg.device ?? undefined);

  if (nproc !== null && nproc > 1) {
    if (world.launcher !== null)
      throw new ConfigError(
        `--nproc ${nproc} starts its own ranks, but this process is already rank ${world.rank} of ${world.size} (${world.source}); under mpirun leave --nproc out`,
      );
    return launchRanks({ nproc, command: self, ...(cfg.threads !== null ? { threadsPerRank: cfg.threads } : {}) });
  }
  let group: Collective;
  if (cuda && world.launcher === 'env') group = await joinNccl(getBackend('cuda'), world);
  else {
    group = processGroup();
    if (group.size > 1 && cuda)
      throw new ConfigError(
        `${group.size} MPI ranks on --device cuda: GPU ranks join through NCCL; start them with vera train --nproc ${group.size} --device cuda or torchrun-style RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT`,
      );
  }

  const stop = new AbortController();
  const onSigint = () => {
    if (stop.signal.aborted) process.exit(130);
    process.stderr.write('\nvera: stopping after this step with a checkpoint (Ctrl-C again to quit at once)\n');
    stop.abort();
  };
  process.on('SIGINT', onSigint);
  // vera train --nproc passes Ctrl-C to the ranks as SIGUSR2 (mpirun forwards it).
  if (group.size > 1) process.on('SIGUSR2', onSigint);
  try {
    const delay = Number(process.env['VERA_TRAIN_CHECKPOINT_DELAY_MS'] ?? 0);
    const r = await train({
      config: cfg,
      signal: stop.signal,
      checkpointDelayMs: Number.isFinite(delay) ? delay : 0,
      collective: group,
    });
    group.finalize();
    if (group.rank !== 0) return EXIT[r.status];
    process.stderr.write(`vera: ${r.message}\n`);
    const summary = {
      status: r.status,
      step: r.step,
      total_steps: r.totalSteps,
      output: r.output,
      checkpoint: r.checkpoint,
      best: r.best ? { ...r.best, dir: join(cfg.output_dir, 'best') } : null,
      ...r.lastEval,
    };
    await writeOut(`${JSON.stringify(summary)}\n`);
    return EXIT[r.status];
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGUSR2', onSigint);
  }
}
