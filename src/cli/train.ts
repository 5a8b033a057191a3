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

/** Flags may be spelled --name_with_underscores or --name-with-dashes; parseArgs gets the former. */
export function flagNames(args: readonly string[]): string[] {
  return args.map((a) =>
    a.startsWith('--') ? a.replace(/^--([^=]+)/, (_m, n: string) => `--${n.replaceAll('-', '_')}`) : a,
  );
}

/** An integer flag ≥ min; the error names the flag. */
export function intFlag(name: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name} must be an integer ≥ ${min}, got "${value}"`);
  return n;
}

/** Writes to stdout and resolves once the chunk is handed to the OS (process.exit would cut a pipe short). */
export function writeOut(text: string): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(text, (e) => (e ? reject(e) : resolve())));
}

/** Runs parseArgs for `command`, its errors as one line that points at the command's --help. */
export function parseCommandArgs<T>(command: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e))
      .split('\n')
      .join(' ')
      .replace(/\. To specify a positional.*$/, '');
    throw new Error(`${msg} (see vera ${command} --help)`, { cause: e });
  }
}
