// Renders docs/EXPERIMENTS.md and docs/experiments-rank.svg from the cached run results: per table the
// median and min–max over seeds, parameters, bytes and time; the paper's claims checked one by one from
// the numbers (so a re-run with other results words its verdicts accordingly); the commands; the machine.

import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Plan, RunSpec, Section, TaskSpec } from './plan.js';
import { type RunRecord, runKey, taskOf, trainCommand } from './runner.js';

/** Median, extremes, mean and (population) standard deviation of a sample. */
export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  mean: number;
  std: number;
}

export function summarize(values: readonly number[]): Summary | null {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = v.length >> 1;
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  const std = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
  return { n: v.length, median, min: v[0]!, max: v[v.length - 1]!, mean, std };
}

/** A row's results over the plan's seeds (those cached so far). */
export interface Row {
  run: RunSpec;
  records: RunRecord[];
  best: Summary | null;
  final: Summary | null;
  seconds: Summary | null;
  trainable: number | null;
  bytes: number | null;
}

export function rowOf(
  plan: Plan,
  run: RunSpec,
  results: ReadonlyMap<string, RunRecord>,
  task: TaskSpec = plan.task,
): Row {
  const records = plan.seeds
    .map((seed) => results.get(runKey(task, run, plan.epochs, seed)))
    .filter((r): r is RunRecord => r !== undefined);
  const pick = (f: (r: RunRecord) => number | null) => summarize(records.map((r) => f(r) ?? NaN));
  return {
    run,
    records,
    best: pick((r) => r.bestAccuracy),
    final: pick((r) => r.finalAccuracy),
    seconds: pick((r) => r.seconds),
    trainable: records[0]?.trainable ?? null,
    bytes: records[0]?.adapterBytes ?? null,
  };
}

const pct = (x: number) => (x * 100).toFixed(1);
const int = (x: number | null) => (x === null ? '—' : x.toLocaleString('en-US'));

/** "81.3 [80.0–82.7]" (accuracy in %), with the seed count when some seeds are missing. */
function accCell(s: Summary | null, seeds: number): string {
  if (!s) return '—';
  const range = s.n > 1 ? ` [${pct(s.min)}–${pct(s.max)}]` : '';
  return `${pct(s.median)}${range}${s.n < seeds ? ` (n=${s.n})` : ''}`;
}

function statusNote(row: Row): string {
  const bad = row.records.filter((r) => r.status !== 'completed');
  return bad.length === 0 ? '' : ` (${bad.map((r) => `seed ${r.seed} ${r.status}`).join(', ')})`;
}

function table(head: string[], rows: string[][], align: ('l' | 'r')[]): string {
  const rule = align.map((a) => (a === 'r' ? '---:' : '---'));
  return [head, rule, ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

/** Paired differences (variant − reference, same seed) of best accuracy. */
function paired(a: Row, ref: Row): Summary | null {
  const bySeed = new Map(ref.records.map((r) => [r.seed, r.bestAccuracy]));
  return summarize(
    a.records.map((r) => {
      const b = bySeed.get(r.seed);
      return r.bestAccuracy === null || b === null || b === undefined ? NaN : r.bestAccuracy - b;
    }),
  );
}

const pp = (d: number) => `${d >= 0 ? '+' : '−'}${Math.abs(d * 100).toFixed(1)}`;

/** How two rows compare: their min–max ranges apart (a clear difference at this seed count) or overlapping. */
function compare(a: Row, b: Row): 'higher' | 'lower' | 'overlap' | null {
  if (!a.best || !b.best) return null;
  // One seed has no spread: nothing is "clear" until there are at least two.
  if (a.best.n < 2 || b.best.n < 2) return 'overlap';
  if (a.best.min > b.best.max) return 'higher';
  if (a.best.max < b.best.min) return 'lower';
  return 'overlap';
}

function sectionRows(plan: Plan, section: Section, results: ReadonlyMap<string, RunRecord>): Row[] {
  return section.runs.map((run) => rowOf(plan, run, results, taskOf(plan, section)));
}

function find(rows: readonly Row[], id: string): Row | undefined {
  return rows.find((r) => r.run.id === id);
}

function hyper(run: RunSpec): string {
  const o = run.options;
  const parts: string[] = [];
  if (o.r != null) parts.push(`r ${o.r}`);
  if (run.method === 'lora' && o.lora_alpha != null) parts.push(`α ${o.lora_alpha}`);
  if (o.lr != null) parts.push(`lr ${o.lr}`);
  if (o.head_lr != null) parts.push(`head lr ${o.head_lr}`);
  return parts.join(', ');
}

// ---- the figure

const SERIES: Record<string, { name: string; color: string }> = {
  vera: { name: 'VeRA', color: '#1f77b4' },
  lora: { name: 'LoRA', color: '#d62728' },
};

/** Accuracy (median, min–max whiskers) over trainable parameters (log scale) for each series of the rank sweep. */
export function renderRankSvg(rows: readonly Row[], refs: { label: string; acc: number }[] = []): string {
  const W = 760;
  const H = 440;
  const m = { l: 64, r: 150, t: 40, b: 56 };
  const pts = rows.filter((r) => r.run.series && r.best && r.trainable);
  const xs = pts.map((r) => Math.log10(r.trainable!));
  const ys = [...pts.flatMap((r) => [r.best!.min, r.best!.max]), ...refs.map((r) => r.acc)];
  const x0 = Math.floor((Math.min(...xs) - 0.1) * 2) / 2;
  const x1 = Math.ceil((Math.max(...xs, 4) + 0.1) * 2) / 2;
  const y0 = Math.floor((Math.min(...ys, 0.6) - 0.01) * 50) / 50;
  const y1 = Math.ceil((Math.max(...ys, 0.7) + 0.01) * 50) / 50;
  const X = (v: number) => m.l + ((v - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (v: number) => H - m.b - ((v - y0) / (y1 - y0)) * (H - m.t - m.b);
  const f = (v: number) => v.toFixed(1);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    '<title>Validation accuracy over trainable parameters, VeRA and LoRA ranks (median and min–max over seeds)</title>',
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.l}" y="22" font-size="14" font-weight="bold">UCI sentiment: best validation accuracy over trainable parameters</text>`,
  ];
  // Grid and axes: decades and half-decades on x, every 2 points on y.
  for (let e = x0; e <= x1 + 1e-9; e += 0.5) {
    const x = f(X(e));
    const label = Number.isInteger(e) ? `10^${e}` : '';
    out.push(`<line x1="${x}" y1="${m.t}" x2="${x}" y2="${H - m.b}" stroke="#e5e5e5"/>`);
    if (label)
      out.push(
        `<text x="${x}" y="${H - m.b + 18}" text-anchor="middle">10<tspan dy="-5" font-size="9">${e}</tspan></text>`,
      );
  }
  const step = y1 - y0 > 0.2 ? 0.05 : 0.02;
  for (let v = Math.ceil(y0 / step) * step; v <= y1 + 1e-9; v += step) {
    const y = f(Y(v));
    out.push(`<line x1="${m.l}" y1="${y}" x2="${W - m.r}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${m.l - 6}" y="${f(Y(v) + 4)}" text-anchor="end">${pct(v)}%</text>`);
  }
  out.push(
    `<rect x="${m.l}" y="${m.t}" width="${W - m.l - m.r}" height="${H - m.t - m.b}" fill="none" stroke="#444"/>`,
    `<text x="${f((m.l + W - m.r) / 2)}" y="${H - 14}" text-anchor="middle">trainable parameters (adapter + 512-value head), log scale</text>`,
    `<text transform="translate(16 ${f((m.t + H - m.b) / 2)}) rotate(-90)" text-anchor="middle">validation accuracy</text>`,
  );
  for (const ref of refs) {
    const y = f(Y(ref.acc));
    out.push(
      `<line x1="${m.l}" y1="${y}" x2="${W - m.r}" y2="${y}" stroke="#777" stroke-dasharray="5 4"/>`,
      `<text x="${m.l + 6}" y="${f(Y(ref.acc) - 5)}" fill="#555">${escapeXml(ref.label)}</text>`,
    );
  }
  let legendY = m.t + 16;
  for (const [id, s] of Object.entries(SERIES)) {
    const series = pts.filter((r) => r.run.series === id).sort((a, b) => a.trainable! - b.trainable!);
    if (series.length === 0) continue;
    const path = series.map((r, i) => `${i ? 'L' : 'M'}${f(X(Math.log10(r.trainable!)))} ${f(Y(r.best!.median))}`);
    out.push(`<path d="${path.join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const r of series) {
      const x = f(X(Math.log10(r.trainable!)));
      out.push(
        `<line x1="${x}" y1="${f(Y(r.best!.min))}" x2="${x}" y2="${f(Y(r.best!.max))}" stroke="${s.color}" stroke-width="1.5"/>`,
        `<circle cx="${x}" cy="${f(Y(r.best!.median))}" r="4" fill="${s.color}"/>`,
        // VeRA's points crowd together on x (its count barely grows with r): label them beside the dot;
        // LoRA's below the whisker, clear of VeRA's labels where the two share a parameter count.
        id === 'vera'
          ? `<text x="${f(X(Math.log10(r.trainable!)) - 7)}" y="${f(Y(r.best!.median) + 4)}" text-anchor="end" font-size="10" fill="${s.color}">r=${r.run.options.r}</text>`
          : `<text x="${x}" y="${f(Y(r.best!.min) + 14)}" text-anchor="middle" font-size="10" fill="${s.color}">r=${r.run.options.r}</text>`,
      );
    }
    out.push(
      `<line x1="${W - m.r + 8}" y1="${legendY}" x2="${W - m.r + 28}" y2="${legendY}" stroke="${s.color}" stroke-width="2"/>`,
      `<circle cx="${W - m.r + 18}" cy="${legendY}" r="4" fill="${s.color}"/>`,
      `<text x="${W - m.r + 34}" y="${legendY + 4}">${s.name}</text>`,
    );
    legendY += 20;
  }
  out.push(
    `<text x="${W - m.r + 8}" y="${legendY + 4}" font-size="10" fill="#555">dot: median;</text>`,
    `<text x="${W - m.r + 8}" y="${legendY + 17}" font-size="10" fill="#555">bar: min–max over seeds</text>`,
    '</svg>',
  );
  return `${out.join('\n')}\n`;
}

function escapeXml(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

// ---- the document

export interface RenderOptions {
  /** Path of the markdown file; the figure is written next to it as experiments-rank.svg. */
  doc: string;
  /** The command that produced the document (shown in it). */
  command?: string;
}

/** Writes the document and the figure; returns their paths. */
export function renderDocument(plan: Plan, results: ReadonlyMap<string, RunRecord>, opts: RenderOptions): string[] {
  const svgPath = join(dirname(opts.doc), 'experiments-rank.svg');
  const { markdown, svg } = renderReport(plan, results, { svgName: basename(svgPath), command: opts.command });
  mkdirSync(dirname(opts.doc), { recursive: true });
  writeFileSync(opts.doc, markdown);
  writeFileSync(svgPath, svg);
  return [opts.doc, svgPath];
}

const SCRIPT = 'node dist/src/experiments/main.js';

/** The markdown and the SVG, as strings. */
export function renderReport(
  plan: Plan,
  results: ReadonlyMap<string, RunRecord>,
  opts: { svgName?: string; command?: string | undefined } = {},
): { markdown: string; svg: string } {
  const n = plan.seeds.length;
  const sections = new Map(plan.sections.map((s) => [s.id, sectionRows(plan, s, results)]));
  const all = [...new Map([...sections.values()].flat().flatMap((r) => r.records.map((x) => [x.key, x]))).values()];
  const planned = new Set(
    plan.sections.flatMap((s) =>
      s.runs.flatMap((r) => plan.seeds.map((seed) => runKey(taskOf(plan, s), r, plan.epochs, seed))),
    ),
  );
  const methods = sections.get('methods') ?? [];
  const ablations = sections.get('ablations') ?? [];
  const rank = sections.get('rank') ?? [];
  const head = find(methods, 'head');
  const headSize = head?.trainable ?? null;
  const fullRows = methods.filter((r) => r.run.method === 'full' && r.best);
  const bestFull = fullRows.sort((a, b) => b.best!.median - a.best!.median)[0];
  const refs = [
    ...(head?.best ? [{ label: 'head only', acc: head.best.median }] : []),
    ...(bestFull?.best ? [{ label: 'full fine-tuning', acc: bestFull.best.median }] : []),
  ];
  const svg = renderRankSvg(rank, refs);
  const data = all.find((r) => r.data && r.task === plan.task.id)?.data ?? { train: 2700, validation: 300 };
  const stepsPerEpoch = all[0] ? Math.round(all[0].steps / all[0].epochs) : Math.ceil(data.train / 32);
  const L: string[] = [];
  const p = (...lines: string[]) => L.push(...lines, '');

  p(
    '# Experiments: the VeRA paper’s claims, checked in small',
    `<!-- Generated by \`${opts.command ?? SCRIPT}\` (src/experiments/) from runs/experiments/results/; edit the generator, not this file. -->`,
  );
  p(
    'This document checks, at a scale a laptop can run offline, what the VeRA paper (Kopiczko, Blankevoort and Asano, *VeRA: Vector-based Random Matrix Adaptation*, ICLR 2024) claims: that VeRA matches LoRA with far fewer trainable parameters (its Tables 1–2), how each of its components matters (Table 6), and how accuracy scales with the rank (Fig. 2). Every number below comes from runs of this repository’s trainer (`train()` in src/train), cached per run and rendered by the script; nothing is typed in by hand.',
  );
  p(
    `**Read this first.** The base model is tiny: a 4-layer, 256-wide GPT-2 of 4.2M parameters that this project pretrained on 4.4M words of public-domain text (assets/base-model), fine-tuned on one binary sentiment task of ${int(data.train + data.validation)} sentences. The paper fine-tunes RoBERTa-base/large (125M/355M parameters, pretrained on 160 GB), GPT-2 Medium/Large, ViTs and Llama 2 on GLUE, E2E, image and instruction data. Absolute accuracies here are therefore **not comparable** with the paper’s, and effects the paper measures in tenths of a point on large validation sets are below what ${int(data.validation)} validation sentences and ${n} seeds can resolve (one sentence is ${(100 / data.validation).toFixed(2)} points; the binomial standard error of an accuracy near 80% on ${int(data.validation)} sentences is about ${(100 * Math.sqrt(0.16 / data.validation)).toFixed(1)} points). What can be checked is the *direction* of each claim, and that is what the verdicts below do.`,
  );

  // ---- setup
  p('## Setup');
  p(
    `- **Task**: ${plan.task.title}. The 3,000 labelled sentences of the UCI *Sentiment Labelled Sentences* set (IMDb, Yelp and Amazon, 1,000 each; Kotzias et al. 2015, CC BY 4.0, from the npm package \`sentiment\`), shuffled with seed ${plan.task.data.splitSeed} and split 90/10 exactly as \`vera demo\` splits them: ${int(data.train)} training and ${int(data.validation)} validation sentences. The split is the same for every run, so the seeds vary only the training.`,
    `- **Base model**: \`${plan.task.model}\` as GPT2ForSequenceClassification (last-token pooling) with a new 2-class head of ${headSize === null ? '512' : int(headSize)} values, which every method trains in full (for VeRA and LoRA as PEFT’s \`modules_to_save\`); the parameter counts below include it. The paper excludes the head from its counts; subtract ${headSize === null ? '512' : int(headSize)} to compare.`,
    '- **Adapters**: VeRA and LoRA adapt the attention projections of all 4 blocks (`attn.c_attn`, the fused q/k/v, and `attn.c_proj`: 8 layers), except one row of section 1 that adapts every linear layer of the blocks (also `mlp.c_fc` and `mlp.c_proj`: 16 layers). The paper adapts query and value (GLUE). VeRA adapters are saved seed-only (`save_projection: false`, PEFT’s option), so their files hold the λ vectors and the head; the two rows with other projection initialisations must store the projections (PEFT can regenerate only Kaiming-uniform ones), hence their larger files.',
    `- **Training**: ${plan.epochs} epochs of ${stepsPerEpoch} steps, batch 32, AdamW without weight decay, linear schedule with 6% warm-up, gradient clipping at 1, sequences cut to 64 tokens, length-bucketed batches. Learning rates are the demo’s (VeRA 3e-2, LoRA 2e-3, head 5e-3 for the head everywhere) and are not tuned per rank, unlike the paper’s (section 4 sweeps them for VeRA r=256 and LoRA r=16 only); LoRA keeps α = 2r (scale 2) at every rank; full fine-tuning, which the demo does not run, is shown at two learning rates.`,
    `- **Seeds**: ${plan.seeds.join(', ')}. A run’s seed drives the head’s initialisation, VeRA’s \`projection_prng_key\`, LoRA’s initialisation and the data order.`,
    '- **Metric**: validation accuracy, evaluated after every epoch. *Best* is the best of those evaluations (the checkpoint the trainer keeps in `best/`; the protocol of the LoRA paper, which the VeRA paper follows on GLUE); *final* is after the last epoch and is the less optimistic number. Each cell is the **median [min–max] over the seeds**.',
    '- **Time** is the wall-clock time of `train()` (data loading, training, the per-epoch evaluations and checkpoint writes), median over seeds.',
  );

  // ---- machine and cost
  p('## Machine and cost');
  const machines = [...new Set(all.map((r) => machineText(r)))];
  const seconds = all.reduce((s, r) => s + r.seconds, 0);
  const wall = busySeconds(all.map((r) => [Date.parse(r.finishedAt) - r.seconds * 1000, Date.parse(r.finishedAt)]));
  const load = summarize(all.map((r) => r.loadBefore));
  // The load the sweep itself makes: its parallel runs' threads.
  const busy = Math.max(1, ...all.map((r) => (r.machine.parallel ?? 1) * (r.machine.threads ?? r.machine.cores)));
  const missing = [...planned].filter((k) => !results.has(k)).length;
  p(
    machines.length ? machines.map((m) => `- ${m}`).join('\n') : '- (no runs cached yet)',
    `- ${all.length} runs${missing ? ` (${missing} planned runs not run yet, marked — or n=…)` : ''}, ${fmtDuration(seconds)} of training in total${wall ? `, ${fmtDuration(wall)} with runs in progress` : ''}${
      all.length
        ? `, finished ${all
            .map((r) => r.finishedAt)
            .sort()
            .at(-1)!
            .slice(0, 10)}`
        : ''
    }.`,
    ...(load
      ? [
          `- The 1-minute load average at the start of a run was ${load.median.toFixed(1)} (median; ${load.min.toFixed(1)}–${load.max.toFixed(1)})${load.median > busy + 1.5 ? ': other work shared the machine during the sweep, so the times are inflated and noisy; compare them within a table only' : ''}.`,
        ]
      : []),
  );

  // ---- reproduce
  p('## Reproduce');
  p(
    '```sh',
    'npm run build',
    `${SCRIPT}                          # the whole document: trains what runs/experiments/results/ lacks, then renders`,
    `${SCRIPT} --workers 4              # the same, 4 runs at a time (2 threads each: 8 cores)`,
    ...plan.sections.map((s) => `${SCRIPT} --sections ${s.id.padEnd(9)}  # ${s.title.replace(/\s*\(.*\)$/, '')}`),
    `${SCRIPT} --render-only            # re-render this file and the figure from the cache, no training`,
    `${SCRIPT} --list                   # every run as a plain \`vera train\` command`,
    '```',
  );
  p(
    `The whole sweep is ${planned.size} runs (rows shared by two sections train once); on the machine above it took ${fmtDuration(wall || seconds)}. It can be interrupted and restarted at any time: each finished run is cached as \`runs/experiments/results/<hash>.json\`, keyed by everything that defines the run, and runs go seed by seed, so a partial sweep still covers every row. The results behind this document are committed there, so \`--render-only\` gives back this file and the figure byte for byte (a test checks it); delete them to train everything anew. The section “Commands per row” gives each row as a \`vera train\` command (after \`${SCRIPT} --prepare\` writes the data).`,
  );

  // ---- 1. methods
  p(`## 1. ${plan.sections.find((s) => s.id === 'methods')?.title ?? 'Methods'}`);
  p(
    table(
      ['method', 'settings', 'trainable params', 'adapter bytes', 'best acc. %', 'final acc. %', 'time'],
      methods.map((r) => [
        r.run.label + statusNote(r),
        hyper(r.run),
        int(r.trainable),
        int(r.bytes),
        accCell(r.best, n),
        accCell(r.final, n),
        r.seconds ? `${r.seconds.median.toFixed(0)} s` : '—',
      ]),
      ['l', 'l', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  p(
    'Adapter bytes: the saved `adapter_model.safetensors` (λ vectors or LoRA matrices plus the head, float32, with the safetensors header); for head-only and full fine-tuning, the trained weights as float32.',
  );

  // ---- 2. ablations
  const def = find(ablations, 'vera-r256');
  p(`## 2. ${plan.sections.find((s) => s.id === 'ablations')?.title ?? 'Ablations'}`);
  p(
    'Each row changes one thing of the default VeRA (r = 256); Δ is the paired difference to the default with the same seed (median [min–max], points). “Only d” and “only b” keep the removed vector fixed at ones (it is still stored, so the file loads in PEFT unchanged), and “only d” starts d at 0 as the paper does, so that, as in every other row, the adapter starts as the identity; they are vera-ts options outside PEFT’s format (`--vera_train_b false`, `--vera_train_d false`, `--vera_projection_init`), saved under `vera_ts_experimental` in adapter_config.json.',
  );
  p(
    table(
      [
        'variant',
        'what changes',
        'trainable params',
        'adapter bytes',
        'best acc. %',
        'Δ best (pts)',
        'final acc. %',
        'time',
      ],
      ablations.map((r) => {
        const d = def && r !== def ? paired(r, def) : null;
        return [
          r.run.label + statusNote(r),
          r.run.note ?? '',
          int(r.trainable),
          int(r.bytes),
          accCell(r.best, n),
          d ? `${pp(d.median)}${d.n > 1 ? ` [${pp(d.min)}, ${pp(d.max)}]` : ''}` : r === def ? '(reference)' : '—',
          accCell(r.final, n),
          r.seconds ? `${r.seconds.median.toFixed(0)} s` : '—',
        ];
      }),
      ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );

  // ---- 3. rank
  p(`## 3. ${plan.sections.find((s) => s.id === 'rank')?.title ?? 'Rank'}`);
  p(
    `![Validation accuracy over trainable parameters for VeRA and LoRA at each rank](${opts.svgName ?? 'experiments-rank.svg'})`,
  );
  p(
    'The paper’s Fig. 2 plots accuracy against trainable parameters for VeRA at r ∈ {1, 4, 16, 64, 256, 1024} and LoRA at r ∈ {1, 2, 4, 8, 16, 32, 64}. VeRA’s count grows only by r per adapted layer (8 layers here: Σ out-features = 4,096 values of b, plus 8·r of d), LoRA’s by r·(in + out) per layer (6,144·r here). The dashed lines are the head-only and the best full fine-tuning medians.',
  );
  p(
    table(
      ['method', 'r', 'trainable params', 'without head', 'adapter bytes', 'best acc. %', 'final acc. %', 'time'],
      rank.map((r) => [
        (SERIES[r.run.series ?? '']?.name ?? r.run.method) + statusNote(r),
        String(r.run.options.r ?? ''),
        int(r.trainable),
        r.trainable !== null && headSize !== null ? int(r.trainable - headSize) : '—',
        int(r.bytes),
        accCell(r.best, n),
        accCell(r.final, n),
        r.seconds ? `${r.seconds.median.toFixed(0)} s` : '—',
      ]),
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );

  // ---- 4. learning rate
  const lr = sections.get('lr') ?? [];
  if (lr.length > 0) {
    p(`## 4. ${plan.sections.find((s) => s.id === 'lr')?.title ?? 'Learning rate'}`);
    p(
      'Not an experiment of the paper: every table above uses one learning rate per method (the demo’s), while the paper tunes it per method and task. This sweep moves the adapter’s rate by factors of about 3 around it (the head keeps 5e-3), to see how much of the difference between VeRA and LoRA is the rate.',
    );
    p(
      table(
        ['method', 'lr', 'trainable params', 'best acc. %', 'final acc. %', 'time'],
        lr.map((r) => [
          (SERIES[r.run.series ?? '']?.name ?? r.run.method) + ` r=${r.run.options.r}` + statusNote(r),
          String(r.run.options.lr),
          int(r.trainable),
          accCell(r.best, n),
          accCell(r.final, n),
          r.seconds ? `${r.seconds.median.toFixed(0)} s` : '—',
        ]),
        ['l', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
  }

  // ---- 5. another split
  const domains = sections.get('domains') ?? [];
  const domainSection = plan.sections.find((s) => s.id === 'domains');
  if (domainSection && domains.length > 0) {
    const d = all.find((r) => r.data && r.task === taskOf(plan, domainSection).id)?.data;
    p(`## 5. ${domainSection.title}`);
    p(
      `Not an experiment of the paper: the same sentences split by their source instead of at random${d ? ` (${int(d.train)} Yelp and Amazon sentences to train on, the ${int(d.validation)} IMDb ones to validate on)` : ''}, with the settings of section 1, to see whether its comparison holds when the validation sentences come from elsewhere.`,
    );
    p(
      table(
        ['method', 'settings', 'trainable params', 'best acc. %', 'final acc. %', 'time'],
        domains.map((r) => [
          r.run.label + statusNote(r),
          hyper(r.run),
          int(r.trainable),
          accCell(r.best, n),
          accCell(r.final, n),
          r.seconds ? `${r.seconds.median.toFixed(0)} s` : '—',
        ]),
        ['l', 'l', 'r', 'r', 'r', 'r'],
      ),
    );
  }

  // ---- 6. bf16 mixed precision
  const precision = sections.get('precision') ?? [];
  const precisionSection = plan.sections.find((s) => s.id === 'precision');
  if (precisionSection && precision.length > 0) {
    p(`## 6. ${precisionSection.title}`);
    p(
      'Not an experiment of the paper: the adapter rows of section 1 trained again with `--dtype bf16`: the frozen base stored in bf16 and its GEMMs (VeRA’s projections included) computed in bf16 with f32 accumulation, as `torch.autocast` computes them, while activations, λ, LoRA’s A and B, the head and AdamW stay f32.',
    );
    // No time column: these rows may have been trained on other machines than section 1's.
    p(
      table(
        ['method', 'settings', 'trainable params', 'best acc. %', 'final acc. %'],
        precision.map((r) => [
          r.run.label + statusNote(r),
          hyper(r.run),
          int(r.trainable),
          accCell(r.best, n),
          accCell(r.final, n),
        ]),
        ['l', 'l', 'r', 'r', 'r'],
      ),
    );
  }

  // ---- verdicts
  p('## What matches the paper, and what does not');
  p(
    'Each claim is checked from the table above it. “Clearly” means the min–max ranges over the seeds do not overlap; otherwise the medians are reported but the difference is within the spread of the seeds and not a finding at this scale.',
  );
  L.push(...verdicts({ methods, ablations, rank, lr, domains }), '');
  p('### Why the numbers differ from the paper’s');
  p(
    '- **Scale.** A 4.2M-parameter model pretrained on 4.4M words has weak features: the frozen body is probably a poor sentiment encoder (head-only training, which uses the body’s features as they are, stays far below full fine-tuning in section 1), so methods that change the body (LoRA, full fine-tuning) have more to gain than in the paper, where the pretrained representation already separates the classes and the adapter only nudges it. The paper’s central argument is that a large model needs only a tiny, low-dimensional adaptation; a tiny model may not.',
    '- **Width.** With a model width of 256, VeRA’s vector d (r values per layer) dominates its count once r > 256, so VeRA at r = 1024 has *more* parameters than LoRA at r = 1 here; in the paper’s 1024-wide models the crossover is far later.',
    `- **One small task.** ${int(data.validation)} validation sentences resolve about ±2–3 points; the paper’s ablation effects are often smaller than that. The same sentences serve every run, so paired differences are less noisy than the absolute numbers, but ${n} seeds are still few.`,
    '- **Little tuning.** The paper tunes learning rates per method and task; here every rank shares its method’s rate from the demo, only VeRA r=256 and LoRA r=16 are swept (section 4), and full fine-tuning has two. A row may look worse only because its rate fits less well.',
    '- **Head in the counts, attention only.** All counts include the trained 512-value head; the adapters sit on the fused q/k/v and output projections rather than on query and value alone.',
  );

  // ---- commands
  p('## Commands per row');
  p(
    `Each row as one \`vera train\` command (replace \`SEED\` by ${plan.seeds.join(', ')}), after \`npm run build\` and \`${SCRIPT} --prepare\`, which writes runs/experiments/data/{train,validation}.csv. The script itself calls the same trainer through its API with \`threads: 2\` and deletes each run’s output once its result is cached.`,
  );
  for (const s of plan.sections) {
    L.push(`<details><summary>${s.title}</summary>`, '', '```sh');
    for (const run of s.runs) L.push(`# ${run.label}`, trainCommand(plan, run, 'SEED', undefined, taskOf(plan, s)));
    L.push('```', '', '</details>', '');
  }
  return { markdown: `${L.join('\n').trimEnd()}\n`, svg };
}

function machineText(r: RunRecord): string {
  const m = r.machine;
  return `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB; ${m.os}; Node ${m.node}; ${m.backend} backend, ${m.threads ?? 'all'} threads per run${(m.parallel ?? 1) > 1 ? `, ${m.parallel} runs at a time` : ''}`;
}

/** Seconds covered by the union of [start, end] intervals in ms (sweeps restarted later add no idle gap). */
export function busySeconds(intervals: [number, number][]): number {
  let total = 0;
  let until = -Infinity;
  for (const [a, b] of [...intervals].sort((x, y) => x[0] - y[0])) {
    if (b <= until) continue;
    total += b - Math.max(a, until);
    until = b;
  }
  return total / 1000;
}

function fmtDuration(s: number): string {
  if (s < 90) return `${s.toFixed(0)} s`;
  const min = Math.round(s / 60);
  return min < 90 ? `${min} min` : `${Math.floor(min / 60)} h ${min % 60} min`;
}

/** How the default's median compares with the best variant's, in words. */
function agreement(reference: number, variant: number): string {
  if (reference > variant) return 'agree with in the medians, though not beyond the seed spread';
  return reference === variant
    ? 'neither confirm nor contradict (the default ties with the best single vector in the medians)'
    : 'do not reproduce';
}

/** The paper's claims, each worded from the numbers. */
function verdicts(s: { methods: Row[]; ablations: Row[]; rank: Row[]; lr: Row[]; domains: Row[] }): string[] {
  const out: string[] = [];
  const acc = (r: Row) => `${pct(r.best!.median)}%`;
  const params = (r: Row) => int(r.trainable);
  const say = (claim: string, text: string) => out.push(`- **${claim}** ${text}`);
  const rel = (a: Row, b: Row, words: { higher: string; lower: string; overlap: string }) => words[compare(a, b)!];

  const vera = find(s.methods, 'vera-r256');
  const lora16 = find(s.methods, 'lora-r16');
  const lora1 = find(s.methods, 'lora-r1');
  const head = find(s.methods, 'head');
  const full = s.methods
    .filter((r) => r.run.method === 'full' && r.best)
    .sort((a, b) => b.best!.median - a.best!.median)[0];
  if (vera?.best && lora16?.best) {
    const ratio = lora16.trainable! / vera.trainable!;
    const v = rel(vera, lora16, {
      higher: 'VeRA is clearly *better*',
      lower: 'LoRA is clearly better: this does **not** match the paper at this scale',
      overlap: 'the two are within the seed spread of each other, which is what the paper claims',
    });
    say(
      'VeRA matches LoRA with far fewer parameters (Tables 1–2).',
      `VeRA r=256 reaches ${acc(vera)} with ${params(vera)} trainable values, LoRA r=16 ${acc(lora16)} with ${params(lora16)} (${ratio.toFixed(0)}× more): ${v}.`,
    );
  }
  if (vera?.best && lora1?.best)
    say(
      'At an equal parameter count,',
      `LoRA r=1 (${params(lora1)} values, the same as VeRA r=256) reaches ${acc(lora1)}: ${rel(vera, lora1, {
        higher: 'VeRA is clearly better, as the paper’s argument (more rank for the same budget) predicts',
        lower: 'LoRA is clearly better, against the paper’s argument',
        overlap: 'within the seed spread of VeRA',
      })}.`,
    );
  if (vera?.best && head?.best)
    say(
      'Adapting the body helps over training the head alone.',
      `Head-only reaches ${acc(head)}; VeRA ${rel(vera, head, { higher: 'is clearly above it', lower: 'is clearly below it, which would be surprising', overlap: 'is within its spread, so here VeRA’s λ vectors add little over the head' })}.`,
    );
  if (full?.best && vera?.best)
    say(
      'Full fine-tuning as the reference.',
      `${full.run.label} reaches ${acc(full)} (${params(full)} values); VeRA ${rel(vera, full, { higher: 'is clearly above it', lower: 'is clearly below it', overlap: 'is within its spread' })}${lora16?.best ? `, LoRA r=16 ${rel(lora16, full, { higher: 'clearly above it', lower: 'clearly below it', overlap: 'within its spread' })}` : ''}.`,
    );

  const def = find(s.ablations, 'vera-r256');
  const abl = (id: string) => {
    const r = find(s.ablations, id);
    return r?.best && def?.best ? r : undefined;
  };
  const delta = (r: Row) => {
    const d = paired(r, def!);
    return d ? `${pp(d.median)} points` : '';
  };
  const onlyD = abl('only-d');
  const onlyB = abl('only-b');
  if (def?.best && onlyD && onlyB) {
    const both = compare(def, onlyD) === 'higher' && compare(def, onlyB) === 'higher';
    say(
      'Both scaling vectors are needed (Table 6, “only d” / “only b”).',
      `Only d: ${acc(onlyD)} (${delta(onlyD)}, ${params(onlyD)} values); only b: ${acc(onlyB)} (${delta(onlyB)}, ${params(onlyB)} values); both: ${acc(def)}. ${
        both
          ? 'Removing either vector clearly costs accuracy, as in the paper.'
          : `${[onlyD, onlyB].filter((r) => compare(def, r) === 'higher').length === 0 ? 'Neither removal clearly costs accuracy here' : `Only removing ${compare(def, onlyD) === 'higher' ? 'b' : 'd'} clearly costs accuracy`}; the paper finds both vectors together best, which these runs ${agreement(def.best.median, Math.max(onlyD.best!.median, onlyB.best!.median))}.`
      }`,
    );
  }
  const kn = abl('init-kaiming-normal');
  const un = abl('init-uniform');
  if (def?.best && kn && un) {
    say(
      'Initialisation of the shared matrices (Table 6).',
      `Kaiming uniform (default) ${acc(def)}, Kaiming normal ${acc(kn)} (${delta(kn)}), uniform [0, 0.1] ${acc(un)} (${delta(un)}). The paper finds both Kaiming initialisations ahead of the uniform one; here the uniform one is ${rel(un, def, { higher: 'clearly better, which does **not** match', lower: 'clearly worse, which matches', overlap: 'within the spread of the default' })}, and Kaiming normal is ${rel(kn, def, { higher: 'clearly better than Kaiming uniform', lower: 'clearly worse than Kaiming uniform', overlap: 'within the spread of Kaiming uniform' })}.`,
    );
  }
  const d7 = abl('d-init-1e-7');
  const d1 = abl('d-init-1');
  if (def?.best && d7 && d1) {
    say(
      'Initial value of d (Table 6).',
      `d_initial 0.1 (default) ${acc(def)}, 1e-7 ${acc(d7)} (${delta(d7)}), 1.0 ${acc(d1)} (${delta(d1)}). The paper finds small initial values (0.1, 1e-7) better than 1.0; here d_initial 1.0 is ${rel(d1, def, { higher: 'clearly better than 0.1, which does **not** match', lower: 'clearly worse than 0.1, which matches', overlap: 'within the spread of 0.1' })}, and 1e-7 is ${rel(d7, def, { higher: 'clearly better than 0.1', lower: 'clearly worse than 0.1', overlap: 'within the spread of 0.1' })}.`,
    );
  }

  const series = (id: string) =>
    s.rank.filter((r) => r.run.series === id && r.best).sort((a, b) => a.run.options.r! - b.run.options.r!);
  const vs = series('vera');
  const ls = series('lora');
  if (vs.length >= 2) {
    const lo = vs[0]!;
    const hi = vs.at(-1)!;
    const top = [...vs].sort((a, b) => b.best!.median - a.best!.median)[0]!;
    say(
      'VeRA improves with rank (Fig. 2).',
      `From r=${lo.run.options.r} (${acc(lo)}, ${params(lo)} values) to r=${hi.run.options.r} (${acc(hi)}, ${params(hi)} values) ${rel(hi, lo, { higher: 'accuracy clearly rises, as in the paper', lower: 'accuracy clearly falls, unlike the paper', overlap: 'the change is within the seed spread' })}; the best median is at r=${top.run.options.r}.`,
    );
  }
  if (vs.length >= 2 && ls.length >= 2) {
    const vmax = Math.max(...vs.map((r) => r.trainable!));
    const lmin = Math.min(...ls.map((r) => r.trainable!));
    const vtop = [...vs].sort((a, b) => b.best!.median - a.best!.median)[0]!;
    const ltop = [...ls].sort((a, b) => b.best!.median - a.best!.median)[0]!;
    say(
      'VeRA is more parameter-efficient than LoRA (Fig. 2).',
      `VeRA’s largest adapter (${int(vmax)} values) is ${vmax < lmin ? 'smaller than' : 'larger than'} LoRA’s smallest (${int(lmin)}). The best VeRA rank (r=${vtop.run.options.r}, ${acc(vtop)}) ${rel(vtop, ltop, { higher: 'is clearly above', lower: 'is clearly below', overlap: 'is within the seed spread of' })} the best LoRA rank (r=${ltop.run.options.r}, ${acc(ltop)}, ${params(ltop)} values).`,
    );
  }
  // Fig. 2's claim at matched budgets: VeRA and LoRA rows with exactly the same trainable count.
  const matched = vs.flatMap((v) => ls.filter((l) => l.trainable === v.trainable).map((l) => [v, l] as const));
  if (matched.length > 0) {
    const pairs = matched.map(
      ([v, l]) =>
        `VeRA r=${v.run.options.r} ${acc(v)} against LoRA r=${l.run.options.r} ${acc(l)} (${params(v)} values each; ${pp(v.best!.median - l.best!.median)} points, ${rel(v, l, { higher: 'clearly', lower: 'clearly', overlap: 'within the seed spread' })})`,
    );
    const ahead = matched.filter(([v, l]) => v.best!.median > l.best!.median).length;
    say(
      'At the same number of trainable parameters, higher-rank VeRA beats LoRA (Fig. 2: “by 4 accuracy points”).',
      `${pairs.join('; ')}. VeRA is ahead in ${ahead} of ${matched.length} matched pair${matched.length > 1 ? 's' : ''} in the medians${ahead === matched.length ? ', the direction the paper reports' : ''}.`,
    );
  }
  const bestOf = (id: string) =>
    s.lr.filter((r) => r.run.series === id && r.best).sort((a, b) => b.best!.median - a.best!.median)[0];
  const vBest = bestOf('vera');
  const lBest = bestOf('lora');
  if (vBest && lBest) {
    const edge = (r: Row, id: string) => {
      const rates = s.lr.filter((x) => x.run.series === id).map((x) => x.run.options.lr!);
      const at = r.run.options.lr!;
      return at === Math.min(...rates) || at === Math.max(...rates) ? ' (at the edge of the sweep)' : '';
    };
    say(
      'With each method at its best learning rate (section 4),',
      `VeRA r=256 reaches ${acc(vBest)} at lr ${vBest.run.options.lr}${edge(vBest, 'vera')} and LoRA r=16 ${acc(lBest)} at lr ${lBest.run.options.lr}${edge(lBest, 'lora')}: ${rel(
        vBest,
        lBest,
        {
          higher: 'VeRA is clearly better',
          lower: `LoRA stays clearly better, by ${pp(lBest.best!.median - vBest.best!.median).slice(1)} points in the medians, so the rate does not explain the gap`,
          overlap: `the two are within the seed spread of each other (${pp(vBest.best!.median - lBest.best!.median)} points in the medians), as the paper claims, with ${(lBest.trainable! / vBest.trainable!).toFixed(0)}× fewer trainable values for VeRA`,
        },
      )}.`,
    );
  }
  const dv = find(s.domains, 'vera-r256');
  const dl = find(s.domains, 'lora-r16');
  const dl1 = find(s.domains, 'lora-r1');
  if (dv?.best && dl?.best && dl1?.best)
    say(
      'On the split by source (section 5),',
      `VeRA r=256 reaches ${acc(dv)}, LoRA r=1 ${acc(dl1)} (the same count) and LoRA r=16 ${acc(dl)}: against LoRA r=16 VeRA ${rel(dv, dl, { higher: 'is clearly better', lower: 'is clearly worse, as on the random split', overlap: 'is within the seed spread' })}; against LoRA r=1 it ${rel(dv, dl1, { higher: 'is clearly better', lower: 'is clearly worse', overlap: 'is within the seed spread' })}.`,
    );
  if (out.length === 0) out.push('- (no results cached yet)');
  return out;
}
