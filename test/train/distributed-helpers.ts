// Whether the data-parallel tests can run here: the MPI addon built and mpirun on PATH. Without them
// the tests are skipped with the reason, and fail under VERA_REQUIRE_MPI=1 (CI).

import assert from 'node:assert/strict';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { mpiUnavailable } from '../../src/train/distributed/mpi.js';

function onPath(cmd: string): boolean {
  return (process.env['PATH'] ?? '').split(delimiter).some((d) => {
    try {
      accessSync(join(d, cmd), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export const MPI_MISSING: string | null =
  mpiUnavailable() ?? (onPath('mpirun') ? null : 'mpirun is not on PATH (sudo apt-get install -y openmpi-bin)');
const REQUIRE = process.env['VERA_REQUIRE_MPI'] === '1';

/** A test that needs MPI: skipped with the reason where it is missing, failed instead under VERA_REQUIRE_MPI=1. */
export function mpiTest(name: string, fn: () => unknown, opts: { timeout?: number } = {}): void {
  const skip = MPI_MISSING !== null && !REQUIRE ? `MPI is not available: ${MPI_MISSING}` : false;
  test(name, { skip, timeout: opts.timeout ?? 120_000 }, async () => {
    if (MPI_MISSING !== null) assert.fail(`VERA_REQUIRE_MPI=1 but ${MPI_MISSING}`);
    await fn();
  });
}
