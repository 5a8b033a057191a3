// selectBackend, the --backend/--threads handling every subcommand shares: names come from the
// registry's list, --threads is validated, and a backend without a worker pool ignores it (--device:
// device.test.ts).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { defaultBackend } from '../../src/backends/registry.js';
import { selectBackend } from '../../src/cli/common.js';

describe('selectBackend', () => {
  test('--backend accepts the registry names and rejects others, listing them', () => {
    assert.throws(
      () => selectBackend('tpu', undefined),
      /^Error: --backend must be "js", "native" or "cuda", got "tpu"$/,
    );
    selectBackend('js', undefined);
    assert.equal(defaultBackend().name, 'js');
  });

  test('--threads must be an integer ≥ 1; the js backend (one thread) accepts it', () => {
    assert.throws(() => selectBackend('js', '0'), /--threads must be an integer ≥ 1, got "0"/);
    selectBackend('js', '3');
    assert.equal(defaultBackend().getThreads?.(), 1);
  });
});
