// A token bucket per API key: `perMinute` requests a minute on average, bursts up to `burst`. A request
// over the limit gets 429 with Retry-After (whole seconds, rounded up, as HTTP says) and retry-after-ms
// (what the openai client reads first), so clients back off by exactly the time the bucket needs.

import { ApiError } from './errors.js';

export interface RateLimitOptions {
  /** Sustained requests per minute per key. */
  perMinute: number;
  /** The most at once (the bucket's size); default perMinute. */
  burst?: number;
  /** The clock (ms), for tests. */
  now?: () => number;
}

export type RateDecision = { ok: true; remaining: number } | { ok: false; retryAfterMs: number };

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  readonly perMinute: number;
  readonly burst: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();
  #takes = 0;

  constructor(opts: RateLimitOptions) {
    const { perMinute, burst = perMinute } = opts;
    if (!(perMinute > 0) || !Number.isFinite(perMinute))
      throw new Error(`rate limit: perMinute must be > 0, got ${perMinute}`);
    if (!(burst >= 1) || !Number.isFinite(burst)) throw new Error(`rate limit: burst must be ≥ 1, got ${burst}`);
    this.perMinute = perMinute;
    this.burst = burst;
    this.#now = opts.now ?? Date.now;
  }

  /** Takes `cost` tokens from `key`'s bucket if it holds them (a cost above the burst counts as the burst). */
  take(key: string, cost = 1): RateDecision {
    const now = this.#now();
    const perMs = this.perMinute / 60_000;
    if (++this.#takes % 1024 === 0) this.#sweep(now, perMs);
    const b = this.#buckets.get(key) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + (now - b.at) * perMs);
    b.at = now;
    this.#buckets.set(key, b);
    const need = Math.min(cost, this.burst);
    if (b.tokens >= need) {
      b.tokens -= need;
      return { ok: true, remaining: Math.floor(b.tokens) };
    }
    return { ok: false, retryAfterMs: Math.ceil((need - b.tokens) / perMs) };
  }

  /** take(), throwing ApiError 429 with Retry-After when over the limit. */
  check(key: string, cost = 1): void {
    const d = this.take(key, cost);
    if (d.ok) return;
    throw new ApiError(
      429,
      `Rate limit reached: ${this.perMinute} requests per minute for this key; retry in ${Math.ceil(d.retryAfterMs / 1000)} s`,
      {
        code: 'rate_limit_exceeded',
        headers: {
          'retry-after': String(Math.max(1, Math.ceil(d.retryAfterMs / 1000))),
          'retry-after-ms': String(d.retryAfterMs),
          'x-ratelimit-limit-requests': String(this.perMinute),
          'x-ratelimit-remaining-requests': '0',
        },
      },
    );
  }

  /** Buckets full again are the same as absent ones: forget them, so memory follows active keys only. */
  #sweep(now: number, perMs: number): void {
    for (const [k, b] of this.#buckets) if (b.tokens + (now - b.at) * perMs >= this.burst) this.#buckets.delete(k);
  }
}
