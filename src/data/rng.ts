// Seeded randomness for data order: a 32-bit seed derived from (seed, epoch, purpose), so every
// epoch's shuffle and the validation split are pure functions of the user's seed; unbiased integers
// and Fisher–Yates permutations drawn from our MT19937 Generator.

import { Generator } from '../tensor/random.js';

/** murmur3's 32-bit finaliser: a bijection that spreads every input bit over the output. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** What a derived seed is for; different purposes of one (seed, epoch) draw independent streams. */
export type SeedPurpose = 'shuffle' | 'split';

const PURPOSE: Record<SeedPurpose, number> = { shuffle: 1, split: 2 };

/**
 * The generator seed for (seed, epoch, purpose). MT19937 only takes 32 bits, and seeding it with seed + epoch
 * would make (seed 1, epoch 0) and (seed 0, epoch 1) the same stream; hashing the parts in turn does not.
 */
export function deriveSeed(seed: number, epoch: number, purpose: SeedPurpose): number {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`[data] seed must be an integer, got ${seed}`);
  const lo = Number(BigInt.asUintN(32, BigInt(seed)));
  const hi = Number(BigInt.asUintN(32, BigInt(seed) >> 32n));
  let h = fmix32(lo ^ 0x9e3779b9);
  h = fmix32(h ^ hi);
  h = fmix32(h ^ (epoch >>> 0));
  return fmix32(h ^ PURPOSE[purpose]);
}

/** A generator for (seed, epoch, purpose). */
export function generatorFor(seed: number, epoch: number, purpose: SeedPurpose): Generator {
  return new Generator(deriveSeed(seed, epoch, purpose));
}

/** An integer uniform in [0, n), n ≤ 2³², by rejection (no modulo bias). */
export function randomBelow(g: Generator, n: number): number {
  if (n <= 1) return 0;
  const limit = Math.floor(4294967296 / n) * n;
  for (;;) {
    const u = g.nextU32();
    if (u < limit) return u % n;
  }
}

/** Shuffles `a` in place (Fisher–Yates, from the end) and returns it. */
export function shuffleInPlace<T extends { [i: number]: unknown; length: number }>(g: Generator, a: T): T {
  for (let i = a.length - 1; i > 0; i--) {
    const j = randomBelow(g, i + 1);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

/** A random permutation of 0..n−1. */
export function permutation(g: Generator, n: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return shuffleInPlace(g, p);
}
