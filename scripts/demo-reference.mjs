#!/usr/bin/env node
// Writes test/cuda/demo-cpu.json: the validation accuracy of `npm run demo -- --methods vera` (f32 and
// bf16, seed 0, the default 4 epochs) on the native CPU backend, which test/cuda/demo.test.ts holds the
// GPU's run of the same demo to. Run after `npm run build` on a machine with the native addon.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDemo } from '../dist/src/cli/demo.js';

const out = mkdtempSync(join(tmpdir(), 'vera-demo-ref-'));
const runs = {};
try {
  for (const dtype of ['f32', 'bf16']) {
    const [row] = await runDemo({
      methods: ['vera'],
      epochs: 4,
      seed: 0,
      out: join(out, dtype),
      backend: 'native',
      dtype,
    });
    runs[dtype] = row.accuracy;
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
const ref = {
  command: 'node scripts/demo-reference.mjs (vera demo --methods vera --seed 0 --epochs 4 --backend native)',
  date: new Date().toISOString().slice(0, 10),
  cpu: cpus()[0]?.model ?? 'unknown',
  accuracy: runs,
};
writeFileSync(new URL('../test/cuda/demo-cpu.json', import.meta.url), `${JSON.stringify(ref, null, 2)}\n`);
console.log(JSON.stringify(ref));
