// Parity with the reference implementations: every case of test/parity/fixtures/metrics/metrics.json
// (test/parity/gen_metrics.py; each section names the implementation that produced it) is reproduced,
// values within tolerance, reference errors as throws. Skipped, with the reason, while it is missing.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  accuracy,
  bleu,
  bleuMteval,
  ciderDetailed,
  f1,
  matthewsCorrcoef,
  nist,
  pearson,
  perplexity,
  porterStem,
  rougeL,
  rougeLCoco,
  rougeLCocoSentence,
  spearman,
} from '../../src/metrics/index.js';
import { sentenceRefs } from '../../src/metrics/util.js';

type Num = number | string; // non-finite numbers are written as "NaN" / "Infinity" / "-Infinity"
interface Outcome<T> {
  expected?: T;
  error?: string;
}
interface Section<C> {
  implementation: string;
  tolerance?: number;
  cases: C[];
}
interface TextCase<T> extends Outcome<T> {
  name: string;
  hyps: string[];
  refs: (string | null)[][];
}
interface Fixture {
  sections: {
    classification?: Section<{
      name: string;
      pred: number[];
      gold: number[];
      accuracy: Outcome<Num>;
      mcc: Outcome<Num>;
      f1: (Outcome<Num> & { average: 'binary' | 'macro' | 'micro'; positive?: number })[];
    }>;
    correlation?: Section<{ name: string; x: Num[]; y: Num[]; pearson: Outcome<Num>; spearman?: Outcome<Num> }>;
    perplexity?: Section<{ name: string; meanNll: number; expected: Num }>;
    bleu?: Section<
      TextCase<{
        score: Num;
        precisions: Num[];
        bp: Num;
        sysLen: number;
        refLen: number;
        counts: number[];
        totals: number[];
      }> & { opts: { tokenize?: '13a' | 'none' | 'intl'; lowercase?: boolean } }
    >;
    rougeL?: Section<TextCase<{ precision: Num; recall: Num; fmeasure: Num }> & { opts: { useStemmer: boolean } }>;
    rougeL_torchmetrics?: Section<
      TextCase<{ precision: Num; recall: Num; fmeasure: Num }> & { opts: { useStemmer: boolean } }
    >;
    porter?: Section<{ word: string; stem: string }>;
    rougeLCoco?: Section<TextCase<{ score: Num; perSentence: Num[] }>>;
    cider?: Section<TextCase<{ score: Num; perSentence: Num[] }>>;
    mteval?: Section<TextCase<{ nist: Num[]; bleu: Num }>>;
  };
}

const FIXTURE = new URL('../../../test/parity/fixtures/metrics/metrics.json', import.meta.url);
const fixture: Fixture | null = existsSync(FIXTURE) ? (JSON.parse(readFileSync(FIXTURE, 'utf8')) as Fixture) : null;
const MISSING =
  'test/parity/fixtures/metrics/metrics.json is missing: run `python3 test/parity/gen_metrics.py` (see its header)';

const num = (v: Num): number => (typeof v === 'number' ? v : Number(v));

/** |got − want| ≤ tol·max(1, |want|); NaN matches NaN, ±Infinity matches itself. */
function close(got: number, want: Num, tol: number, what: string): void {
  const w = num(want);
  if (Number.isNaN(w) || !Number.isFinite(w)) {
    assert.ok(Object.is(got, w) || (Number.isNaN(got) && Number.isNaN(w)), `${what}: got ${got}, want ${w}`);
    return;
  }
  assert.ok(Math.abs(got - w) <= tol * Math.max(1, Math.abs(w)), `${what}: got ${got}, want ${w} (tol ${tol})`);
}

/** Runs fn and checks it against the reference's outcome: a value, or an error (then fn must throw). */
function outcome<G, W>(o: Outcome<W>, what: string, fn: () => G, check: (got: G, want: W) => void): void {
  if (o.error !== undefined) {
    assert.throws(fn, Error, `${what}: the reference raised "${o.error}", so this must throw`);
    return;
  }
  check(fn(), o.expected as W);
}

/** Runs one section's cases as subtests, or skips the section with the reason. */
function section<C>(
  name: keyof Fixture['sections'],
  run: (c: C, tol: number, sec: Section<C>) => void,
  label: (c: C) => string,
  defaultTol = 1e-12,
): void {
  const sec = fixture?.sections[name] as Section<C> | undefined;
  const skip = fixture === null ? MISSING : sec === undefined ? `section '${name}' is not in metrics.json` : false;
  describe(`${name}${sec ? ` vs ${sec.implementation}` : ''}`, { skip }, () => {
    if (!sec) return;
    for (const c of sec.cases) test(label(c), () => run(c, sec.tolerance ?? defaultTol, sec));
  });
}

section<NonNullable<Fixture['sections']['classification']>['cases'][number]>(
  'classification',
  (c, tol) => {
    outcome(
      c.accuracy,
      'accuracy',
      () => accuracy(c.pred, c.gold),
      (g, w) => close(g, w, tol, 'accuracy'),
    );
    outcome(
      c.mcc,
      'mcc',
      () => matthewsCorrcoef(c.pred, c.gold),
      (g, w) => close(g, w, tol, 'mcc'),
    );
    for (const v of c.f1) {
      const opts = { average: v.average, ...(v.positive !== undefined ? { positive: v.positive } : {}) };
      const what = `f1 ${JSON.stringify(opts)}`;
      outcome(
        v,
        what,
        () => f1(c.pred, c.gold, opts),
        (g, w) => close(g, w, tol, what),
      );
    }
  },
  (c) => c.name,
);

section<NonNullable<Fixture['sections']['correlation']>['cases'][number]>(
  'correlation',
  (c, tol) => {
    const x = c.x.map(num);
    const y = c.y.map(num);
    outcome(
      c.pearson,
      'pearson',
      () => pearson(x, y),
      (g, w) => close(g, w, tol, 'pearson'),
    );
    if (c.spearman) {
      outcome(
        c.spearman,
        'spearman',
        () => spearman(x, y),
        (g, w) => close(g, w, tol, 'spearman'),
      );
    }
  },
  (c) => c.name,
);

section<NonNullable<Fixture['sections']['perplexity']>['cases'][number]>(
  'perplexity',
  (c, tol) => close(perplexity(c.meanNll), c.expected, tol, 'perplexity'),
  (c) => c.name,
);

section<NonNullable<Fixture['sections']['bleu']>['cases'][number]>(
  'bleu',
  (c, tol) =>
    outcome(
      c,
      'bleu',
      () => bleu(c.hyps, c.refs, c.opts),
      (g, w) => {
        assert.deepEqual(g.counts, w.counts, 'counts');
        assert.deepEqual(g.totals, w.totals, 'totals');
        assert.equal(g.sysLen, w.sysLen, 'sysLen');
        assert.equal(g.refLen, w.refLen, 'refLen');
        close(g.bp, w.bp, tol, 'bp');
        w.precisions.forEach((p, i) => close(g.precisions[i], p, tol, `precisions[${i}]`));
        close(g.score, w.score, tol, 'score');
      },
    ),
  (c) => c.name,
);

for (const name of ['rougeL', 'rougeL_torchmetrics'] as const) {
  section<NonNullable<Fixture['sections']['rougeL']>['cases'][number]>(
    name,
    (c, tol) =>
      outcome(
        c,
        name,
        () => rougeL(c.hyps, c.refs, c.opts),
        (g, w) => {
          close(g.precision, w.precision, tol, 'precision');
          close(g.recall, w.recall, tol, 'recall');
          close(g.fmeasure, w.fmeasure, tol, 'fmeasure');
        },
      ),
    (c) => c.name,
  );
}

section<NonNullable<Fixture['sections']['porter']>['cases'][number]>(
  'porter',
  (c) => assert.equal(porterStem(c.word), c.stem),
  (c) => c.word,
);

section<NonNullable<Fixture['sections']['rougeLCoco']>['cases'][number]>(
  'rougeLCoco',
  (c, tol) =>
    outcome(
      c,
      'rougeLCoco',
      () => rougeLCoco(c.hyps, c.refs),
      (g, w) => {
        close(g, w.score, tol, 'score');
        w.perSentence.forEach((s, i) =>
          close(rougeLCocoSentence(c.hyps[i], sentenceRefs('', c.refs, i)), s, tol, `sentence ${i}`),
        );
      },
    ),
  (c) => c.name,
);

section<NonNullable<Fixture['sections']['cider']>['cases'][number]>(
  'cider',
  (c, tol) =>
    outcome(
      c,
      'cider',
      () => ciderDetailed(c.hyps, c.refs),
      (g, w) => {
        close(g.score, w.score, tol, 'score');
        w.perSentence.forEach((s, i) => close(g.perSentence[i], s, tol, `sentence ${i}`));
      },
    ),
  (c) => c.name,
);

section<NonNullable<Fixture['sections']['mteval']>['cases'][number]>(
  'mteval',
  (c, tol) =>
    outcome(
      c,
      'nist / bleuMteval',
      () => ({
        nist: [1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => nist(c.hyps, c.refs, { n })),
        bleu: bleuMteval(c.hyps, c.refs),
      }),
      (g, w) => {
        w.nist.forEach((v, i) => close(g.nist[i], v, tol, `nist n=${i + 1}`));
        close(g.bleu, w.bleu, tol, 'bleu');
      },
    ),
  (c) => c.name,
);
