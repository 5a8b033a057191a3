// Token streams for pretraining: documents encoded with the trained tokenizer, each followed by
// <|endoftext|>, stored as little-endian uint16 files; and the deterministic order in which 128-token
// blocks of the stream are visited (a fresh permutation and offset per epoch, a pure function of the step).

import { readFileSync, writeFileSync } from 'node:fs';
import { BpeEncoder, type BpeModel } from './bpe.js';
import type { TokenizerJson } from '../io/tokenizers/convert.js';

/** The merges and vocabulary of a byte-level BPE tokenizer.json, for BpeEncoder. */
export function bpeModelFromJson(json: TokenizerJson): BpeModel {
  const vocab = new Map(Object.entries(json.model['vocab'] as Record<string, number>));
  const raw = json.model['merges'] as (string | [string, string])[];
  const merges = raw.map((m): [string, string] => {
    if (Array.isArray(m)) return m;
    const [a, b] = m.split(' ');
    return [a!, b!];
  });
  return { vocab, merges, specialTokens: json.added_tokens.map((t) => t.content) };
}

/** Encodes documents to one stream, `eosId` after each (so the model learns where texts end). */
export function encodeDocs(docs: readonly string[], encoder: BpeEncoder, eosId: number): Uint16Array {
  const parts = docs.map((d) => encoder.encode(d));
  const out = new Uint16Array(parts.reduce((n, p) => n + p.length + 1, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
    out[at++] = eosId;
  }
  return out;
}

export function writeTokens(path: string, ids: Uint16Array): void {
  writeFileSync(path, new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
}

export function readTokens(path: string): Uint16Array {
  const buf = readFileSync(path);
  const out = new Uint16Array(buf.length / 2);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

/** mulberry32: a tiny seeded PRNG for block permutations (stable across platforms). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Visits non-overlapping windows of `block + 1` tokens (inputs and shifted targets) of a stream. Epoch e
 * starts at offset (e · 37) mod block, so block boundaries move between epochs, and shuffles the blocks
 * with seed + e. Batch `step` is blocks [step · batch, (step + 1) · batch) of that endless sequence, so
 * resuming at a step needs nothing but the step.
 */
export class BlockSampler {
  readonly blocksPerEpoch: number;
  #epoch = -1;
  #perm: Uint32Array = new Uint32Array(0);

  constructor(
    readonly tokens: Uint16Array,
    readonly block: number,
    readonly batch: number,
    readonly seed: number,
  ) {
    this.blocksPerEpoch = Math.floor((tokens.length - 1 - block) / block);
    if (this.blocksPerEpoch < batch)
      throw new Error(`[pretrain] the stream is too short for a batch of ${batch} blocks`);
  }

  #offset(epoch: number): number {
    return (epoch * 37) % this.block;
  }

  #permutation(epoch: number): Uint32Array {
    if (epoch !== this.#epoch) {
      const rand = mulberry32(this.seed + epoch * 7919);
      const p = new Uint32Array(this.blocksPerEpoch).map((_, i) => i);
      for (let i = p.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [p[i], p[j]] = [p[j]!, p[i]!];
      }
      this.#epoch = epoch;
      this.#perm = p;
    }
    return this.#perm;
  }

  /** The token ids of batch `step`, [batch, block + 1] row-major. */
  batchAt(step: number): Int32Array {
    const out = new Int32Array(this.batch * (this.block + 1));
    for (let r = 0; r < this.batch; r++) {
      const n = step * this.batch + r;
      const epoch = Math.floor(n / this.blocksPerEpoch);
      const start = this.#offset(epoch) + this.#permutation(epoch)[n % this.blocksPerEpoch]! * this.block;
      for (let i = 0; i <= this.block; i++) out[r * (this.block + 1) + i] = this.tokens[start + i]!;
    }
    return out;
  }

  /** Epochs completed by the end of batch `step` (fractional). */
  epochAt(step: number): number {
    return ((step + 1) * this.batch) / this.blocksPerEpoch;
  }
}

/** Evaluation windows: consecutive, non-overlapping `block + 1` windows from the stream's start. */
export function evalBlocks(tokens: Uint16Array, block: number, maxBlocks = Infinity): Int32Array[] {
  const out: Int32Array[] = [];
  for (let s = 0; s + block + 1 <= tokens.length && out.length < maxBlocks; s += block)
    out.push(Int32Array.from(tokens.subarray(s, s + block + 1)));
  return out;
}
