#!/usr/bin/env node
// Writes test/cuda/demo-cpu.json: the validation accuracy of `npm run demo -- --methods vera` (f32 and
// bf16, seed 0, the default 4 epochs) on the native CPU backend, and of bf16 with bf16 activations
// (VERA_ACTIVATIONS=bf16, what the cuda backend runs), which test/cuda/demo.test.ts holds the GPU's run
// of the same demo to. Run after `npm run build` on a machine with the native addon.
//
// `--seeds A-B [--methods vera,lora]` instead compares bf16 with f32 seed by seed (the demo's split,
// initialisation and order all follow the seed) and prints each seed's accuracies and bf16 − f32, with
// the median and range of the differences; it writes nothing. One seed's gap says little: on the demo
// the per-seed differences spread over several points either way (docs/architecture.md, dtype policy).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { runDemo } from '../dist/src/cli/demo.js';

const { values } = parseArgs({
  options: { seeds: { type: 'string' }, methods: { type: 'string' }, one: { type: 'string' } },
});
const out = mkdtempSync(join(tmpdir(), 'vera-demo-ref-'));

/** Validation accuracy of one demo run. */
async function accuracy(method, seed, dtype) {
  const [row] = await runDemo({
    methods: [method],
    epochs: 4,
    seed,
    out: join(out, `${method}-${seed}-${dtype}`),
    backend: 'native',
    dtype,
  });
  return row.accuracy;
}

try {
  if (values.seeds !== undefined) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(values.seeds);
    if (!m) throw new Error(`--seeds ${values.seeds}: expected A or A-B`);
    const [first, last] = [Number(m[1]), Number(m[2] ?? m[1])];
    const lines = ['| method | seed | f32 % | bf16 % | bf16 − f32 (pts) |', '|---|---:|---:|---:|---:|'];
    for (const method of (values.methods ?? 'vera').split(',')) {
      const diffs = [];
      for (let seed = first; seed <= last; seed++) {
        const [f32, bf16] = [await accuracy(method, seed, 'f32'), await accuracy(method, seed, 'bf16')];
        diffs.push((bf16 - f32) * 100);
        lines.push(
          `| ${method} | ${seed} | ${(f32 * 100).toFixed(2)} | ${(bf16 * 100).toFixed(2)} | ${diffs.at(-1).toFixed(2)} |`,
        );
      }
      const sorted = [...diffs].sort((a, b) => a - b);
      const mid = sorted.length >> 1;
      const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
      lines.push(
        `| ${method} | median [min, max] | | | ${median.toFixed(2)} [${sorted[0].toFixed(2)}, ${sorted.at(-1).toFixed(2)}] |`,
      );
    }
    console.log(lines.join('\n'));
  } else if (values.one !== undefined) {
    // A child run (below): one accuracy on stdout, under this process's VERA_ACTIVATIONS.
    console.log(JSON.stringify(await accuracy('vera', 0, values.one)));
  } else {
    const runs = {};
    for (const dtype of ['f32', 'bf16']) runs[dtype] = await accuracy('vera', 0, dtype);
    // bf16 with bf16 activations, as the cuda backend runs it: the native backend's reference mode
    // (VERA_ACTIVATIONS=bf16, read when the backend loads, hence a child process).
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--one', 'bf16'], {
      env: { ...process.env, VERA_ACTIVATIONS: 'bf16' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (child.status !== 0) throw new Error(`the bf16-activations run failed (exit ${child.status})`);
    runs['bf16-activations'] = JSON.parse(child.stdout.trim().split('\n').at(-1));
    const ref = {
      command:
        'node scripts/demo-reference.mjs (vera demo --methods vera --seed 0 --epochs 4 --backend native; bf16-activations: VERA_ACTIVATIONS=bf16)',
      date: new Date().toISOString().slice(0, 10),
      cpu: cpus()[0]?.model ?? 'unknown',
      accuracy: runs,
    };
    writeFileSync(new URL('../test/cuda/demo-cpu.json', import.meta.url), `${JSON.stringify(ref, null, 2)}\n`);
    console.log(JSON.stringify(ref));
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
