// The per-key token bucket: bursts, refill, 429 with Retry-After, keys independent.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError, errorReply } from '../../src/serve/auth/errors.js';
import { RateLimiter } from '../../src/serve/auth/rate-limit.js';

test('a burst passes, the next request waits exactly for one token; keys are independent', () => {
  let now = 0;
  const rl = new RateLimiter({ perMinute: 60, burst: 3, now: () => now });
  for (let i = 0; i < 3; i++) assert.deepEqual(rl.take('a'), { ok: true, remaining: 2 - i });
  assert.deepEqual(rl.take('a'), { ok: false, retryAfterMs: 1000 });
  assert.equal(rl.take('b').ok, true, 'another key has its own bucket');
  now = 400;
  assert.deepEqual(rl.take('a'), { ok: false, retryAfterMs: 600 });
  now = 1000;
  assert.equal(rl.take('a').ok, true);
  assert.equal(rl.take('a').ok, false);
  now = 1_000_000;
  // Refilled to the burst, not beyond.
  for (let i = 0; i < 3; i++) assert.equal(rl.take('a').ok, true);
  assert.equal(rl.take('a').ok, false);
});

test('check() throws 429 with Retry-After in whole seconds and retry-after-ms', () => {
  let now = 0;
  const rl = new RateLimiter({ perMinute: 2, now: () => now });
  rl.check('k');
  rl.check('k');
  let caught: unknown;
  try {
    rl.check('k');
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof ApiError);
  const r = errorReply(caught);
  assert.equal(r.status, 429);
  assert.equal(r.json.error.type, 'rate_limit_error');
  assert.equal(r.json.error.code, 'rate_limit_exceeded');
  assert.equal(r.headers['retry-after'], '30');
  assert.equal(r.headers['retry-after-ms'], '30000');
  now = 29_999;
  assert.throws(
    () => rl.check('k'),
    (e: ApiError) => e.headers['retry-after'] === '1',
  );
  now = 30_000;
  rl.check('k');
});

test('bad settings are refused; many idle keys are forgotten', () => {
  assert.throws(() => new RateLimiter({ perMinute: 0 }), /perMinute must be > 0/);
  assert.throws(() => new RateLimiter({ perMinute: 10, burst: 0 }), /burst must be ≥ 1/);
  let now = 0;
  const rl = new RateLimiter({ perMinute: 600, burst: 1, now: () => now });
  for (let i = 0; i < 5000; i++) {
    now += 1000;
    assert.equal(rl.take(`key-${i}`).ok, true);
  }
});
