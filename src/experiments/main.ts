// `node dist/src/experiments/main.js`: trains the runs of docs/EXPERIMENTS.md that are not cached yet
// (runs/experiments/results/) and renders the document and its figure from the cache. See --help.

import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BACKEND_CHOICES, BACKEND_NAMES, isBackendName } from '../backends/registry.js';
import { PLAN } from './plan.js';
import { PACKAGE_ROOT } from '../io/package-root.js';
import { renderDocument } from './report.js';
import { jobsOf, loadResults, parseShard, prepareAll, sweep, trainCommand } from './runner.js';

const USAGE = `Usage: node dist/src/experiments/main.js [--sections a,b] [--render-only] [--out DIR] [--doc FILE]
       [--threads N] [--workers N] [--shard i/n] [--backend ${BACKEND_NAMES.join('|')}] [--prepare] [--list] [--verbose]

Trains every run of the plan (src/experiments/plan.ts) that runs/experiments/results/ does not hold yet,
one seed at a time, then writes docs/EXPERIMENTS.md and docs/experiments-rank.svg from the cached results.
Interrupted, it continues where it stopped.

  --sections a,b   Only these sections: ${PLAN.sections.map((s) => s.id).join(', ')} (default: all)
  --render-only    Train nothing; render from the cache (missing runs are marked)
  --out DIR        Data, cache and work folder (default runs/experiments)
  --doc FILE       The document (default docs/EXPERIMENTS.md; the figure goes next to it)
  --threads N      Native backend threads per run (default 2)
  --workers N      Train N runs at a time in N processes (default 1; give each its own cores:
                   N × threads ≤ the cores, or OpenMP contention makes every run many times slower)
  --shard i/n      Train only the i-th of n interleaved parts of the plan, render nothing (a worker)
  --prepare        Only write the data CSVs (for the vera train commands in the document)
  --list           Print each run's vera train command and whether it is cached
`;

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      sections: { type: 'string' },
      'render-only': { type: 'boolean' },
      out: { type: 'string' },
      doc: { type: 'string' },
      threads: { type: 'string' },
      workers: { type: 'string' },
      shard: { type: 'string' },
      backend: { type: 'string' },
      prepare: { type: 'boolean' },
      list: { type: 'boolean' },
      verbose: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const out = resolve(values.out ?? join(PACKAGE_ROOT, 'runs/experiments'));
  const doc = resolve(values.doc ?? join(PACKAGE_ROOT, 'docs/EXPERIMENTS.md'));
  const sections = values.sections?.split(',').map((s) => s.trim());
  const threads = values.threads === undefined ? 2 : Number(values.threads);
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`--threads must be a positive integer`);
  const backend = values.backend === undefined ? null : values.backend;
  if (backend !== null && !isBackendName(backend)) throw new Error(`--backend must be ${BACKEND_CHOICES}`);

  if (values.prepare) {
    for (const { train, validation, counts } of prepareAll(PLAN, out))
      process.stdout.write(`${train} (${counts[0]} rows)\n${validation} (${counts[1]} rows)\n`);
    return 0;
  }
  if (values.list) {
    const cached = loadResults(out);
    for (const job of jobsOf(PLAN, sections))
      process.stdout.write(
        `${cached.has(job.key) ? 'cached ' : 'todo   '} ${trainCommand(PLAN, job.run, job.seed, undefined, job.task)}\n`,
      );
    return 0;
  }
  const workers = values.workers === undefined ? 1 : Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`--workers must be a positive integer`);
  const shard = values.shard === undefined ? undefined : parseShard(values.shard);
  if (values['render-only']) {
    // Nothing to train.
  } else if (workers > 1) {
    prepareAll(PLAN, out);
    const common = [
      ...['--out', out, '--threads', String(threads)],
      ...(values.sections === undefined ? [] : ['--sections', values.sections]),
      ...(backend === null ? [] : ['--backend', backend]),
      ...(values.verbose ? ['--verbose'] : []),
    ];
    const codes = await Promise.all(
      Array.from({ length: workers }, (_, i) => worker([...common, '--shard', `${i + 1}/${workers}`])),
    );
    if (codes.some((c) => c !== 0)) throw new Error(`a worker failed (exit codes ${codes.join(', ')})`);
  } else {
    await sweep(PLAN, { out, sections, threads, backend, verbose: values.verbose ?? false, shard });
  }
  if (shard) return 0; // a worker: whoever started the workers renders
  const written = renderDocument(PLAN, loadResults(out), { doc });
  process.stdout.write(`wrote ${written.join(', ')}\n`);
  return 0;
}

/** Runs this script again as a worker process; its lines are prefixed with its shard. */
function worker(args: string[]): Promise<number> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const tag = args.at(-1)!;
    let pending = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop()!;
      for (const line of lines) process.stdout.write(`[${tag}] ${line}\n`);
    });
    child.on('error', fail);
    child.on('close', (code) => done(code ?? 1));
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`experiments: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
