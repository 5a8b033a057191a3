#!/usr/bin/env node
// Runs node's built-in test runner over every compiled test file, dist/test/**/*.test.js (Node 20's
// --test does not expand globs, so the files are listed here). Extra CLI arguments are forwarded to
// node, e.g. `npm test -- --test-name-pattern=matmul`; arguments that do not start with '-' select
// test files whose path contains them, e.g. `npm test -- autograd`. The default reporter is kept so
// the summary lines (# tests / # pass / # fail) are printed. Exits with the runner's status.

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TEST_DIR = join(ROOT, 'dist', 'test');

function findTests(dir) {
  const out = [];
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...findTests(p));
    else if (e.isFile() && e.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const argv = process.argv.slice(2);
const nodeArgs = argv.filter((a) => a.startsWith('-'));
const fileFilters = argv.filter((a) => !a.startsWith('-'));

// Only outputs whose source still exists: tsc does not delete the output of a removed test file.
const hasSource = (f) => {
  const src = join(ROOT, relative('dist', f)).replace(/\.js$/, '');
  return ['.ts', '.mts', '.tsx'].some((ext) => existsSync(src + ext));
};
let files = findTests(TEST_DIR)
  .map((f) => relative(ROOT, f))
  .filter(hasSource)
  .sort();
if (fileFilters.length > 0) files = files.filter((f) => fileFilters.some((s) => f.includes(s)));

if (files.length === 0) {
  const why = existsSync(TEST_DIR) ? 'no test files match' : 'dist/test does not exist (run npm run build)';
  console.log(`[test] ${why}`);
  // Keep the summary shape that CI reads.
  console.log('# tests 0\n# pass 0\n# fail 0');
  process.exit(fileFilters.length > 0 ? 1 : 0);
}

// Test files run in separate processes; the kernels are multi-threaded themselves, so on a small
// machine running files one at a time keeps timings stable and memory low.
const hasConcurrency = nodeArgs.some((a) => a.startsWith('--test-concurrency'));
const concurrency = process.env.VERA_TEST_CONCURRENCY ?? String(Math.max(1, Math.floor(availableParallelism() / 4)));
const args = [
  '--enable-source-maps',
  '--test',
  ...(hasConcurrency ? [] : [`--test-concurrency=${concurrency}`]),
  ...nodeArgs,
  ...files,
];

const r = spawnSync(process.execPath, args, { cwd: ROOT, stdio: 'inherit' });
if (r.error) {
  console.error(`[test] could not start node: ${r.error.message}`);
  process.exit(1);
}
process.exit(r.status ?? (r.signal ? 1 : 0));
