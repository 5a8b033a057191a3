// Deterministic, resumable batching: each epoch's batches are a pure function of (seed, epoch), optionally
// bucketed by length; a SamplerState (epoch, next batch) resumes exactly. Also the seeded validation split
// and (re-exported) sequence packing.

import { type Dataset, lengthOf, subset } from './example.js';
import { generatorFor, permutation, shuffleInPlace } from './rng.js';

export { packSequences } from './pack.js';

/** Where iteration stands: the next batch is batch `position` of epoch `epoch` (made with `seed`). */
export interface SamplerState {
  epoch: number;
  position: number;
  seed: number;
}

export interface BatchSamplerOpts {
  batchSize: number;
  shuffle: boolean;
  seed: number;
  /** Drop the last, smaller batch of each epoch (default false). */
  dropLast?: boolean;
  /**
   * Group examples of similar length: the (shuffled) order is cut into chunks of 50 batches, each chunk is
   * sorted by length and cut into batches, then the batches are shuffled — less padding, still random.
   */
  bucketByLength?: boolean;
}

/** Batches per bucketing chunk (transformers' LengthGroupedSampler uses megabatches of 50). */
const BUCKET_BATCHES = 50;

export class BatchSampler {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  readonly bucketByLength: boolean;
  readonly batchesPerEpoch: number;
  private readonly n: number;
  private lengths: Int32Array | null = null;
  private cached: { epoch: number; batches: number[][] } | null = null;

  constructor(
    private readonly dataset: Dataset,
    opts: BatchSamplerOpts,
  ) {
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1)
      throw new RangeError(`[sampler] batchSize must be a positive integer, got ${opts.batchSize}`);
    if (!Number.isSafeInteger(opts.seed)) throw new RangeError(`[sampler] seed must be an integer, got ${opts.seed}`);
    this.batchSize = opts.batchSize;
    this.shuffle = opts.shuffle;
    this.seed = opts.seed;
    this.dropLast = opts.dropLast ?? false;
    this.bucketByLength = opts.bucketByLength ?? false;
    this.n = dataset.length;
    this.batchesPerEpoch = this.dropLast ? Math.floor(this.n / this.batchSize) : Math.ceil(this.n / this.batchSize);
    if (this.batchesPerEpoch === 0)
      throw new RangeError(
        `[sampler] ${this.n} examples make no batch of ${this.batchSize}${this.dropLast ? ' with dropLast' : ''}`,
      );
  }

  /** The state before the first batch. */
  start(): SamplerState {
    return { epoch: 0, position: 0, seed: this.seed };
  }

  /** The batches of one epoch as example indices (a pure function of seed and epoch). */
  epochBatches(epoch: number): number[][] {
    if (!Number.isInteger(epoch) || epoch < 0)
      throw new RangeError(`[sampler] epoch must be a non-negative integer, got ${epoch}`);
    if (this.cached?.epoch === epoch) return this.cached.batches.map((b) => [...b]);
    const batches = this.computeBatches(epoch);
    this.cached = { epoch, batches };
    return batches.map((b) => [...b]);
  }

  private computeBatches(epoch: number): number[][] {
    const bs = this.batchSize;
    const g = generatorFor(this.seed, epoch, 'shuffle');
    let order: Int32Array;
    if (this.shuffle) order = permutation(g, this.n);
    else {
      order = new Int32Array(this.n);
      for (let i = 0; i < this.n; i++) order[i] = i;
    }
    let batches: number[][] = [];
    if (!this.bucketByLength) {
      for (let s = 0; s < this.n; s += bs) batches.push(Array.from(order.subarray(s, Math.min(this.n, s + bs))));
    } else {
      const lengths = this.exampleLengths();
      const chunk = bs * BUCKET_BATCHES;
      for (let s = 0; s < this.n; s += chunk) {
        // Longest first within a chunk; ties keep the (shuffled) order, so the sort is deterministic.
        const part = Array.from(order.subarray(s, Math.min(this.n, s + chunk)));
        const rank = new Map(part.map((idx, k) => [idx, k]));
        part.sort((a, b) => lengths[b]! - lengths[a]! || rank.get(a)! - rank.get(b)!);
        for (let t = 0; t < part.length; t += bs) batches.push(part.slice(t, t + bs));
      }
    }
    // Only the very last chunk can leave a short batch, and it is the last one in `batches` here.
    if (this.dropLast && batches.length > 0 && batches[batches.length - 1]!.length < bs) batches.pop();
    if (this.bucketByLength && this.shuffle) batches = shuffleInPlace(g, batches);
    return batches;
  }

  private exampleLengths(): Int32Array {
    if (this.lengths === null) {
      this.lengths = new Int32Array(this.n);
      for (let i = 0; i < this.n; i++) this.lengths[i] = lengthOf(this.dataset, i);
    }
    return this.lengths;
  }

  /**
   * Iterates from a state, yielding [indices, stateAfter]: stateAfter is where to resume after that batch
   * (after an epoch's last batch it is {epoch + 1, position 0}). Runs on through the epochs until
   * `opts.epochs` (exclusive) is reached, forever when not given. Resuming from any yielded stateAfter
   * continues with exactly the batches that would have followed it. A state made with another seed is refused.
   */
  iterate(from: SamplerState, opts: { epochs?: number } = {}): Generator<[number[], SamplerState]> {
    // Checked here, not in the generator, so a bad checkpoint fails at the call rather than at the first next().
    if (from.seed !== this.seed)
      throw new Error(
        `[sampler] the state was made with seed ${from.seed}, this sampler has seed ${this.seed}; resuming would not reproduce the order`,
      );
    if (!Number.isInteger(from.epoch) || from.epoch < 0 || !Number.isInteger(from.position) || from.position < 0)
      throw new RangeError(`[sampler] invalid state ${JSON.stringify(from)}`);
    if (from.position > this.batchesPerEpoch)
      throw new RangeError(
        `[sampler] state position ${from.position} is past the ${this.batchesPerEpoch} batches of an epoch (was the dataset or batch size changed?)`,
      );
    return this.run(from, opts.epochs);
  }

  private *run(from: SamplerState, epochs: number | undefined): Generator<[number[], SamplerState]> {
    let epoch = from.epoch;
    let position = from.position;
    for (;;) {
      if (position >= this.batchesPerEpoch) {
        epoch++;
        position = 0;
      }
      if (epochs !== undefined && epoch >= epochs) return;
      const batches = this.epochBatches(epoch);
      while (position < batches.length) {
        const batch = batches[position]!;
        position++;
        const after =
          position >= batches.length
            ? { epoch: epoch + 1, position: 0, seed: this.seed }
            : { epoch, position, seed: this.seed };
        yield [batch, after];
      }
    }
  }
}

/**
 * Splits a dataset by a seeded permutation: round(length × validationFraction) examples (at least 1 when
 * the fraction is positive) go to validation, the rest to train; both keep the original order of their
 * examples. The same seed gives the same split on every run. `skipped` stays with train.
 */
export function splitDataset(
  ds: Dataset,
  opts: { validationFraction: number; seed: number },
): { train: Dataset; validation: Dataset } {
  const f = opts.validationFraction;
  if (!(f >= 0 && f < 1)) throw new RangeError(`[data] validationFraction must be in [0, 1), got ${f}`);
  const n = ds.length;
  const nVal = f === 0 ? 0 : Math.max(1, Math.round(n * f));
  if (n - nVal < 1) throw new RangeError(`[data] ${n} examples leave none for training with validationFraction ${f}`);
  const perm = permutation(generatorFor(opts.seed, 0, 'split'), n);
  const val = Array.from(perm.subarray(0, nVal)).sort((a, b) => a - b);
  const train = Array.from(perm.subarray(nVal)).sort((a, b) => a - b);
  return { train: subset(ds, train, ds.skipped), validation: subset(ds, val) };
}
