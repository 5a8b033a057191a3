// The conformance suite every backend runs: each kernel, forward and backward, against the js
// reference on the same seeded inputs (odd sizes, strided / broadcast / offset views, bf16 where a
// kernel takes it), within tolerances stated here and restated per backend by its thin test file
// (test/backends/conformance-*.test.ts). A new backend adds one such file. Fused kernels go through
// fused(), so a backend without one is checked on its composite.

import { test } from 'node:test';
import type { Backend } from '../../../src/backends/backend.js';
import { JsBackend } from '../../../src/backends/js/index.js';
import { attentionTests } from './attention.js';
import { bf16Tests } from './bf16.js';
import { elementwiseTests } from './elementwise.js';
import { errorTests } from './errors.js';
import { gatedScaleTests } from './gated-scale.js';
import { type ConformanceOptions, Ctx } from './harness.js';
import { indexingTests } from './indexing.js';
import { matmulTests } from './matmul.js';
import { memoryTests } from './memory.js';
import { miscTests } from './misc.js';
import { reduceTests } from './reduce.js';
import { rowTests } from './rows.js';

export type { ConformanceOptions, Kernel, Tol } from './harness.js';

export interface Load {
  /** Makes the backend under test; a throw is its load error. */
  make: () => Backend;
  /** Whether a load error fails the run (CI) instead of skipping the suite with the error as reason. */
  required?: boolean;
}

/** Registers the suite for the backend `name`. */
export function conformance(name: string, load: Load, opts: ConformanceOptions = {}): void {
  let subject: Backend;
  try {
    subject = load.make();
  } catch (e) {
    const why = `${name} backend unavailable: ${e instanceof Error ? e.message : String(e)}`;
    if (load.required) {
      test(`${name}: backend loads`, () => {
        throw new Error(why);
      });
    } else {
      test(`${name}: conformance`, { skip: why }, () => {});
    }
    return;
  }
  const ctx = new Ctx(name, subject, (opts.reference ?? (() => new JsBackend()))(), opts);
  memoryTests(ctx);
  elementwiseTests(ctx);
  reduceTests(ctx);
  matmulTests(ctx);
  rowTests(ctx);
  indexingTests(ctx);
  attentionTests(ctx);
  miscTests(ctx);
  gatedScaleTests(ctx);
  bf16Tests(ctx);
  errorTests(ctx);
}
