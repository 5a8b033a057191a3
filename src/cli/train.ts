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
import { selectBackend, writeOut } from './common.js';

/** Exit status per outcome: finished (or stopped early by patience) 0, diverged 1, interrupted 130. */
const EXIT = { completed: 0, 'early-stopped': 0, diverged: 1, interrupted: 130 } as const;

export async function trainCommand(args: string[]): Promise<number> {
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
    else process.stderr.write(`vera: no checkpoint in ${outputDir} yet; starting the run from the beginning\n`);
  }
  const cfg = resolveConfig(...layers);
  // The backend loads now, so one that cannot (--device cuda without a GPU) fails as one line, before the run starts.
  selectBackend(cfg.backend ?? undefined, undefined, cfg.device ?? undefined);

  const stop = new AbortController();
  const onSigint = () => {
    if (stop.signal.aborted) process.exit(130);
    process.stderr.write('\nvera: stopping after this step with a checkpoint (Ctrl-C again to quit at once)\n');
    stop.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    const delay = Number(process.env['VERA_TRAIN_CHECKPOINT_DELAY_MS'] ?? 0);
    const r = await train({ config: cfg, signal: stop.signal, checkpointDelayMs: Number.isFinite(delay) ? delay : 0 });
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
  }
}
