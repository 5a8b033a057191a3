// Training checkpoints on disk, each directory written whole or not at all (a temporary directory, files
// fsynced, renamed into place, parent fsynced; a replaced one is set aside first and recoverDirs() tidies
// after a kill), the `latest` pointer, pruning, and trainer_state.json (what a resumed run continues from).

import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { readJsonFile } from '../io/json.js';
import type { SamplerState } from '../data/index.js';
import type { RngState } from '../tensor/random.js';
import type { TrainConfig } from './config.js';

export const STATE_FILE = 'trainer_state.json';
export const CONFIG_FILE = 'training_config.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
const PREFIX = 'checkpoint-';
const TMP = '.tmp-';
const TRASH = '.trash-';

/** Everything besides tensors that a resumed run needs to continue exactly (trainer_state.json). */
export interface TrainerState {
  version: 1;
  /** Optimizer steps taken. */
  step: number;
  totalSteps: number;
  /** Where the data order continues. */
  sampler: SamplerState;
  /** The default generator and the dropout stream position. */
  rng: RngState;
  /** AdamW's step count and group hyper-parameters (the moments are in optimizer.safetensors). */
  optimizer: {
    step: number;
    groups: { lr: number; betas: [number, number]; eps: number; weightDecay: number; size: number }[];
  };
  /** Trainable parameter names in the optimizer's order. */
  parameters: string[];
  best: { metric: string; value: number; step: number } | null;
  /** Evaluations since the last improvement (early stopping). */
  badEvals: number;
  examplesSeen: number;
  tokensSeen: number;
  /** Seconds spent training before this checkpoint (summed over resumed sessions). */
  trainSeconds: number;
  /** The run's labels, so evaluation and merging name them. */
  labelNames: string[] | null;
  /** Losses summed since the last logged step (the next log line averages them). */
  logWindow: { lossSum: number; steps: number };
}

/** A checkpoint directory found on disk. */
export interface CheckpointRef {
  step: number;
  dir: string;
}

/** Synchronous sleep (checkpoint-kill tests slow writing down with it). */
export function sleepMs(ms: number): void {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Makes `dir` hold exactly what `fill` writes into the temporary directory it is given, atomically (see
 * the file comment). `fill` must write its files durably (writeFileAtomic and writeSafetensors fsync).
 */
export function writeDirAtomic(dir: string, fill: (tmp: string) => void): void {
  const parent = dirname(dir);
  mkdirSync(parent, { recursive: true });
  const tag = `${basename(dir)}-${process.pid}-${randomBytes(4).toString('hex')}`;
  const tmp = join(parent, `${TMP}${tag}`);
  mkdirSync(tmp);
  try {
    fill(tmp);
    fsyncPath(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  if (existsSync(dir)) {
    const aside = join(parent, `${TRASH}${tag}`);
    renameSync(dir, aside);
    renameSync(tmp, dir);
    fsyncPath(parent);
    rmSync(aside, { recursive: true, force: true });
  } else {
    renameSync(tmp, dir);
    fsyncPath(parent);
  }
}

/** Removes a directory without ever leaving it half-deleted under its own name. */
export function removeDir(dir: string): void {
  if (!existsSync(dir)) return;
  const aside = join(dirname(dir), `${TRASH}${basename(dir)}-${process.pid}-${randomBytes(4).toString('hex')}`);
  renameSync(dir, aside);
  fsyncPath(dirname(dir));
  rmSync(aside, { recursive: true, force: true });
}

/**
 * Tidies an output directory after a kill: unfinished temporary directories are deleted; a directory set
 * aside while being replaced or removed is put back if nothing took its place, else deleted.
 */
export function recoverDirs(outputDir: string): void {
  if (!existsSync(outputDir)) return;
  for (const name of readdirSync(outputDir)) {
    const p = join(outputDir, name);
    if (name.startsWith(TMP)) rmSync(p, { recursive: true, force: true });
    else if (name.startsWith(TRASH)) {
      // ".trash-<name>-<pid>-<hex>": <name> may itself contain dashes.
      const original = name.slice(TRASH.length).replace(/-\d+-[0-9a-f]{8}$/, '');
      const target = join(outputDir, original);
      // A checkpoint set aside for pruning is not restored (a newer one exists).
      if (!existsSync(target) && !original.startsWith(PREFIX)) renameSync(p, target);
      else rmSync(p, { recursive: true, force: true });
    }
  }
}

/** Complete checkpoints in `outputDir`, oldest first. */
export function listCheckpoints(outputDir: string): CheckpointRef[] {
  if (!existsSync(outputDir)) return [];
  const out: CheckpointRef[] = [];
  for (const name of readdirSync(outputDir)) {
    const m = /^checkpoint-(\d+)$/.exec(name);
    if (!m) continue;
    const dir = join(outputDir, name);
    if (existsSync(join(dir, STATE_FILE))) out.push({ step: Number(m[1]), dir });
  }
  return out.sort((a, b) => a.step - b.step);
}

/** The newest complete checkpoint, or null. */
export function newestCheckpoint(outputDir: string): CheckpointRef | null {
  return listCheckpoints(outputDir).at(-1) ?? null;
}

/**
 * Writes checkpoint-<step> atomically, points `latest` at it, then removes the oldest checkpoints beyond
 * `keep` (the new one is always kept, and is complete before any old one goes).
 */
export function saveCheckpoint(outputDir: string, step: number, keep: number, fill: (tmp: string) => void): string {
  const dir = join(outputDir, `${PREFIX}${step}`);
  writeDirAtomic(dir, fill);
  writeFileAtomic(join(outputDir, 'latest'), `${PREFIX}${step}\n`);
  const all = listCheckpoints(outputDir);
  for (const old of all.slice(0, Math.max(0, all.length - Math.max(1, keep)))) removeDir(old.dir);
  return dir;
}

export function readTrainerState(dir: string): TrainerState {
  const file = join(dir, STATE_FILE);
  const s = readJsonFile(file) as TrainerState;
  if (s === null || typeof s !== 'object' || s.version !== 1 || !Number.isInteger(s.step))
    throw new Error(`[train] ${file}: not a vera-ts trainer state (version 1)`);
  return s;
}

/** The run config a checkpoint was written with. */
export function readCheckpointConfig(dir: string): Partial<TrainConfig> {
  return readJsonFile(join(dir, CONFIG_FILE)) as Partial<TrainConfig>;
}

/** fsync a directory (or file) by path; platforms that cannot sync directories are not an error. */
function fsyncPath(p: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(p, 'r');
    fsyncSync(fd);
  } catch {
    // Windows and some network filesystems refuse to fsync directories.
  } finally {
    if (fd !== null) closeSync(fd);
  }
}
