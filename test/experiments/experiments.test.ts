// The experiments runner on a tiny plan (the shipped base model, 64 UCI sentences, 1 epoch, 1 seed):
// runs train once and are cached, a second sweep trains nothing, rows shared by sections train once,
// the vera train commands parse, and the report renders medians, ranges, verdicts and the figure.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BASE_MODEL, DEMO_COMMON, demoMethod, lora, vera } from '../../src/experiments/demo-recipe.js';
import { PACKAGE_ROOT } from '../../src/io/package-root.js';
import { type Plan, PLAN, UCI_IMDB_TASK } from '../../src/experiments/plan.js';
import { busySeconds, renderDocument, renderReport, summarize } from '../../src/experiments/report.js';
import {
  type RunRecord,
  jobsOf,
  loadResults,
  parseShard,
  prepareData,
  runConfig,
  runKey,
  sweep,
  trainCommand,
} from '../../src/experiments/runner.js';
import { parseFlags, resolveConfig } from '../../src/train/config.js';
import { scratch } from '../train/helpers.js';

const TINY: Plan = {
  task: { ...PLAN.task, data: { ...PLAN.task.data, trainLimit: 64, validationLimit: 32 } },
  epochs: 1,
  seeds: [0],
  sections: [
    {
      id: 'methods',
      title: 'Methods',
      runs: [
        { id: 'head', label: 'head only', method: 'head', options: { lr: 5e-3 } },
        { id: 'vera-r4', label: 'VeRA r=4', method: 'vera', options: vera(4) },
      ],
    },
    {
      id: 'rank',
      title: 'Rank',
      runs: [
        { id: 'vera-r4', label: 'VeRA r=4', method: 'vera', options: vera(4), series: 'vera' },
        { id: 'lora-r1', label: 'LoRA r=1', method: 'lora', options: lora(1), series: 'lora' },
      ],
    },
  ],
};

describe('experiments runner', () => {
  test('keys, job order and the vera train commands', () => {
    const run = TINY.sections[0]!.runs[1]!;
    assert.equal(runKey(TINY.task, run, 1, 0), runKey(TINY.task, { ...run, label: 'renamed' }, 1, 0));
    assert.notEqual(runKey(TINY.task, run, 1, 0), runKey(TINY.task, run, 1, 1));
    assert.notEqual(runKey(TINY.task, run, 1, 0), runKey(TINY.task, { ...run, options: vera(8) }, 1, 0));
    // Seed by seed; the row two sections share is one job.
    const jobs = jobsOf({ ...TINY, seeds: [0, 1] });
    assert.deepEqual(
      jobs.map((j) => `${j.run.id}/${j.seed}`),
      ['head/0', 'vera-r4/0', 'lora-r1/0', 'head/1', 'vera-r4/1', 'lora-r1/1'],
    );
    assert.deepEqual(
      jobsOf(TINY, ['rank']).map((j) => j.run.id),
      ['vera-r4', 'lora-r1'],
    );
    assert.throws(() => jobsOf(TINY, ['nope']), /unknown section nope/);
    // The command a row documents is the configuration the runner trains.
    const flags = trainCommand(PLAN, PLAN.sections[1]!.runs[1]!, 2).split(' ').slice(3);
    const fromFlags = resolveConfig(parseFlags(flags).given);
    const direct = runConfig(PLAN, PLAN.sections[1]!.runs[1]!, 2, { train: 't', validation: 'v', output: 'o' });
    for (const key of ['method', 'r', 'lr', 'head_lr', 'vera_train_b', 'epochs', 'seed', 'max_length'] as const)
      assert.deepEqual(fromFlags[key], direct[key], key);
    assert.equal(fromFlags.vera_train_b, false);
    assert.equal(PLAN.seeds.length >= 3, true);
  });

  test('the split by source: IMDb validates, Yelp and Amazon train; the random split is unchanged', () => {
    const { dir, cleanup } = scratch('experiments-split');
    try {
      const bySource = prepareData(UCI_IMDB_TASK, join(dir, 'imdb'));
      assert.deepEqual(bySource.counts, [2000, 1000]);
      const random = prepareData(PLAN.task, join(dir, 'random'));
      assert.deepEqual(random.counts, [2700, 300]);
      const texts = (file: string) => new Set(readFileSync(file, 'utf8').split('\n').slice(1, -1));
      const [train, validation] = [texts(bySource.train), texts(bySource.validation)];
      // Only sentences that two sources share word for word (one here) are on both sides.
      assert.ok([...validation].filter((t) => train.has(t)).length <= 1);
    } finally {
      cleanup();
    }
  });

  test("the plan's method rows run each method as `vera demo` does (one definition)", () => {
    assert.equal(PLAN.task.common, DEMO_COMMON);
    assert.equal(join(PACKAGE_ROOT, PLAN.task.model), BASE_MODEL);
    const methods = PLAN.sections.find((s) => s.id === 'methods')!.runs;
    for (const [method, id] of [
      ['vera', 'vera-r256'],
      ['lora', 'lora-r16'],
      ['head', 'head'],
    ] as const) {
      const row = methods.find((r) => r.id === id)!;
      assert.equal(row.method, method);
      assert.deepEqual(demoMethod(method), { method, ...row.options }, id);
    }
    assert.deepEqual(demoMethod('vera'), { method: 'vera', ...vera(256) });
  });

  test('--shard i/n', () => {
    assert.deepEqual(parseShard('1/4'), { index: 0, count: 4 });
    assert.deepEqual(parseShard('4/4'), { index: 3, count: 4 });
    for (const bad of ['0/4', '5/4', '1/0', '1', 'a/b', '1/2/3'])
      assert.throws(() => parseShard(bad), /--shard must be i\/n/, bad);
  });

  test('busy time is the union of the runs’ intervals', () => {
    assert.equal(busySeconds([]), 0);
    // Two overlapping runs, one inside another, and a later sweep after an idle gap.
    assert.equal(
      busySeconds([
        [0, 4000],
        [1000, 6000],
        [2000, 3000],
        [60_000, 61_500],
      ]),
      7.5,
    );
  });

  test('docs/EXPERIMENTS.md and its figure are exactly what the committed results render to', () => {
    const { dir, cleanup } = scratch('experiments-doc');
    try {
      const doc = join(dir, 'EXPERIMENTS.md');
      const results = loadResults(join(PACKAGE_ROOT, 'runs/experiments'));
      assert.equal(results.size, jobsOf(PLAN).length, 'every run of the plan is cached');
      renderDocument(PLAN, results, { doc });
      assert.equal(readFileSync(doc, 'utf8'), readFileSync(join(PACKAGE_ROOT, 'docs/EXPERIMENTS.md'), 'utf8'));
      assert.equal(
        readFileSync(join(dir, 'experiments-rank.svg'), 'utf8'),
        readFileSync(join(PACKAGE_ROOT, 'docs/experiments-rank.svg'), 'utf8'),
      );
    } finally {
      cleanup();
    }
  });

  test('median and range', () => {
    assert.equal(summarize([]), null);
    assert.deepEqual(summarize([3, 1, 2]), { n: 3, median: 2, min: 1, max: 3, mean: 2, std: Math.sqrt(2 / 3) });
    assert.equal(summarize([4, 1, 3, 2])!.median, 2.5);
    assert.equal(summarize([NaN, 1])!.n, 1);
  });

  test('a sweep trains each run once, caches it, resumes from the cache, and renders the report', async () => {
    const { dir, cleanup } = scratch('experiments');
    try {
      const out = join(dir, 'out');
      const data = prepareData(TINY.task, join(out, 'data'));
      assert.deepEqual(data.counts, [64, 32]);
      const lines: string[] = [];
      // Two workers' shards split the jobs between them (by position: jobs 1 and 3, then job 2).
      await sweep(TINY, { out, threads: 1, log: (l) => lines.push(l), shard: parseShard('1/2') });
      assert.match(lines[0]!, /^experiments \(shard 1\/2\): 2 runs \(0 cached, 2 to train\)/);
      assert.deepEqual([...loadResults(out).values()].map((r) => r.runId).sort(), ['head', 'lora-r1']);
      lines.length = 0;
      const first = await sweep(TINY, { out, threads: 1, log: (l) => lines.push(l) });
      assert.match(lines[0]!, /3 runs \(2 cached, 1 to train\); data: 64 training, 32 validation/);
      assert.equal(readdirSync(join(out, 'results')).length, 3);
      assert.equal(readdirSync(join(out, 'work')).length, 0, 'work directories are removed');
      for (const r of first) {
        assert.equal(r.status, 'completed');
        assert.equal(r.steps, 2);
        assert.ok(r.bestAccuracy !== null && r.bestAccuracy >= 0 && r.bestAccuracy <= 1);
        assert.equal(r.evals.length, 1);
        assert.deepEqual(r.data, { train: 64, validation: 32 });
      }
      const byId = new Map(first.map((r) => [r.runId, r]));
      assert.equal(byId.get('head')!.trainable, 512);
      assert.equal(byId.get('head')!.adapterBytes, 2048);
      // VeRA: Σ out (4 × (768 + 256)) of b, 8 × r of d, and the head; LoRA: r·(in + out) = 6,144·r and the head.
      assert.equal(byId.get('vera-r4')!.trainable, 4096 + 8 * 4 + 512);
      assert.equal(byId.get('lora-r1')!.trainable, 6144 + 512);
      assert.ok(byId.get('vera-r4')!.adapterBytes > (4096 + 32 + 512) * 4);

      lines.length = 0;
      const again = await sweep(TINY, { out, threads: 1, log: (l) => lines.push(l) });
      assert.match(lines[0]!, /3 runs \(3 cached, 0 to train\)/);
      assert.equal(lines.length, 1);
      assert.deepEqual(again, first);

      // Rendering: a second seed (made up) gives medians with ranges, and a document with every section.
      const results = loadResults(out);
      const two: Plan = { ...TINY, seeds: [0, 1] };
      for (const r of first) {
        const key = runKey(
          two.task,
          two.sections.flatMap((s) => s.runs).find((x) => x.id === r.runId)!,
          1,
          1,
        );
        const fake: RunRecord = { ...r, key, seed: 1, bestAccuracy: r.bestAccuracy! + 0.1, finalAccuracy: 0.5 };
        results.set(key, fake);
      }
      const { markdown, svg } = renderReport(two, results);
      const head = byId.get('head')!;
      const pct = (x: number) => (x * 100).toFixed(1);
      assert.ok(
        markdown.includes(
          `${pct((head.bestAccuracy! + (head.bestAccuracy! + 0.1)) / 2)} [${pct(head.bestAccuracy!)}–${pct(head.bestAccuracy! + 0.1)}]`,
        ),
      );
      assert.match(markdown, /^# Experiments/);
      assert.match(markdown, /## 1\. Methods/);
      assert.match(markdown, /## 3\. Rank/);
      assert.match(markdown, /## What matches the paper/);
      assert.match(markdown, /node bin\/vera\.js train --model assets\/base-model .* --seed SEED/);
      assert.match(markdown, /\| VeRA \| 4 \| 4,640 \| 4,128 \|/);
      assert.match(svg, /^<svg [^>]*>/);
      assert.equal((svg.match(/<circle /g) ?? []).length, 2 + 2, 'one dot per rank point, one per legend entry');
      assert.ok(svg.trimEnd().endsWith('</svg>'));

      const doc = join(dir, 'docs', 'EXPERIMENTS.md');
      const written = renderDocument(TINY, loadResults(out), { doc });
      assert.deepEqual(written, [doc, join(dir, 'docs', 'experiments-rank.svg')]);
      assert.match(readFileSync(doc, 'utf8'), /!\[[^\]]*\]\(experiments-rank\.svg\)/);
    } finally {
      cleanup();
    }
  });
});
