// Benchmark runner: `npm run bench` runs every bench below, `npm run bench -- gemm` a subset (names
// or prefixes). Each bench module exports `run(): Promise<BenchRow[]>` and prints its rows as JSON
// lines while it runs (stdout carries only those lines; progress goes to stderr). The results are
// written to BENCHMARKS.md between <!-- bench:begin --> and <!-- bench:end -->, one block per bench
// (a bench that was not run keeps its previous block); prose outside the markers is kept.
// `--no-write` skips BENCHMARKS.md.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BenchRow, ROOT, cpuInfo, higherIsBetter, note } from './lib.js';

interface BenchModule {
  run(): Promise<BenchRow[]>;
}

const BENCHES: readonly { name: string; title: string; load: () => Promise<BenchModule> }[] = [
  {
    name: 'gemm',
    title:
      'GEMM: ops.matmul on tensors (JS call and output allocation included) vs oneDNN called from C++, in f32 and bf16',
    load: () => import('./gemm.js'),
  },
  {
    name: 'gpt2-step',
    title:
      'GPT-2-small training step, frozen base: only ln_1.weight trains, or VeRA r=256 on the attention projections (its λ train); f32 and bf16 mixed precision',
    load: () => import('./gpt2-step.js'),
  },
  {
    name: 'generate',
    title:
      'Greedy generation with the KV cache, batch 1, 128-token prompt, 64 new tokens (Llama 1.1B: 32, to keep the bench near 5 minutes): prefill and decode tokens/s, each side its better of 2 rounds',
    load: () => import('./generate.js'),
  },
  {
    name: 'load',
    title:
      'Loading a Llama 1.1B bf16 safetensors checkpoint (2.2 GB, page cache warm): seconds and peak RSS growth, median of 3 child processes per side',
    load: () => import('./load.js'),
  },
  {
    name: 'mixed',
    title:
      'Mixed-adapter batches on the shipped base model: one forward with 8 adapters in the batch vs the same batch on one adapter, median of 9',
    load: () => import('./mixed.js'),
  },
  {
    name: 'vera-overhead',
    title:
      'VeRA r=256 on all seven linear layers of TinyLlama-1.1B-shaped decoder layers, bf16 frozen weights: training step against the frozen base, with shared-input reuse (A·x once for q/k/v and gate/up) on and off, and the GEMM FLOPs each adds',
    load: () => import('./vera-overhead.js'),
  },
  {
    name: 'cuda',
    title:
      "One NVIDIA GPU: VeRA and LoRA training steps (bf16 frozen weights, causal-LM loss, AdamW) against PEFT 0.21 under torch.autocast, and greedy generation against transformers' generate; tokens/s and peak device memory",
    load: () => import('./cuda.js'),
  },
  {
    name: 'cuda-dp',
    title:
      'Data-parallel scaling on the GPUs of one host: the Llama-2-7B-shaped VeRA r=1024 step (4×512 tokens per GPU) on 1, 2, 4 and 8 ranks through NCCL, tokens/s per GPU against one GPU',
    load: () => import('./cuda-dp.js'),
  },
  {
    name: 'serve',
    title:
      '`vera serve` on loopback (the command in a child process; the model in its worker thread, continuous batching for generation), 64 concurrent clients, a random one of 1,000 VeRA adapters of the shipped base per request against the same load on one adapter: generation (/v1/completions) and classification (/classify); then continuous against static batching on a mixed load of short and long generations',
    load: () => import('./serve.js'),
  },
  {
    name: 'safetensors-fuzz',
    title: 'safetensors reader: fuzzed files and load speed',
    load: () => import('./safetensors-fuzz.js'),
  },
];

const BEGIN = '<!-- bench:begin -->';
const END = '<!-- bench:end -->';
const blockBegin = (name: string): string => `<!-- bench:${name}:begin -->`;
const blockEnd = (name: string): string => `<!-- bench:${name}:end -->`;

function fmt(x: number | null): string {
  if (x === null) return '—';
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

function table(rows: readonly BenchRow[]): string {
  const out = ['| case | ours | peer | peer name | unit | ours / peer |', '|---|--:|--:|---|---|--:|'];
  const notes: string[] = [];
  for (const r of rows) {
    const q = r.ours !== null && r.peer !== null && r.peer !== 0 ? r.ours / r.peer : null;
    const ratio = q === null ? '—' : `${q >= 0.1 ? q.toFixed(2) : q.toPrecision(2)}×`;
    const better = higherIsBetter(r.unit) ? 'higher is better' : 'lower is better';
    const detail = typeof r['peer_detail'] === 'string' ? ` (${r['peer_detail']})` : '';
    out.push(
      `| ${r.case} | ${fmt(r.ours)} | ${fmt(r.peer)} | ${r.peer_name}${detail} | ${r.unit} (${better}) | ${ratio} |`,
    );
    for (const key of ['ours_error', 'peer_error']) {
      if (typeof r[key] === 'string')
        notes.push(`- ${r.case}: ${key === 'ours_error' ? 'ours' : 'peer'} not measured: ${r[key]}`);
    }
  }
  return [...out, ...(notes.length > 0 ? ['', ...notes] : [])].join('\n');
}

function block(name: string, title: string, rows: readonly BenchRow[], machine: string): string {
  const date = new Date().toISOString().slice(0, 10);
  return [
    blockBegin(name),
    `### ${title}`,
    '',
    `Measured ${date} on ${machine}. Reproduce: \`npm run bench -- ${name}\` (all benchmarks: \`npm run bench\`).`,
    '',
    table(rows),
    blockEnd(name),
  ].join('\n');
}

/** A bench's table in the generated section and the prose that follows it (kept across rewrites). */
interface Block {
  table: string;
  after: string;
}

/** The existing per-bench blocks of the generated section, by name, each with the text after it. */
function existingBlocks(section: string): Map<string, Block> {
  const blocks = new Map<string, Block>();
  const re = /<!-- bench:([\w.-]+):begin -->[\s\S]*?<!-- bench:\1:end -->/g;
  for (const m of section.matchAll(re)) {
    const rest = section.slice(m.index + m[0].length);
    const next = rest.search(/<!-- bench:[\w.-]+:begin -->/);
    blocks.set(m[1]!, { table: m[0], after: (next < 0 ? rest : rest.slice(0, next)).trim() });
  }
  return blocks;
}

function writeReport(results: Map<string, BenchRow[]>, machine: string): void {
  const file = join(ROOT, 'BENCHMARKS.md');
  let doc = existsSync(file)
    ? readFileSync(file, 'utf8')
    : '# Benchmarks\n\nHow this engine compares with reference implementations on the same machine.\n\n';
  let start = doc.indexOf(BEGIN);
  let end = doc.indexOf(END);
  if (start < 0 || end < start) {
    doc = `${doc.trimEnd()}\n\n${BEGIN}\n${END}\n`;
    start = doc.indexOf(BEGIN);
    end = doc.indexOf(END);
  }
  const blocks = existingBlocks(doc.slice(start, end));
  for (const [name, rows] of results) {
    const b = BENCHES.find((x) => x.name === name)!;
    blocks.set(name, { table: block(name, b.title, rows, machine), after: blocks.get(name)?.after ?? '' });
  }
  const order = [
    ...BENCHES.map((b) => b.name),
    ...[...blocks.keys()].filter((k) => !BENCHES.some((b) => b.name === k)),
  ];
  const body = order.flatMap((name) => {
    const b = blocks.get(name);
    return b ? [b.after ? `${b.table}\n\n${b.after}` : b.table] : [];
  });
  const section = [
    BEGIN,
    '<!-- generated by `npm run bench` (bench/run.ts); edit outside each bench:NAME:begin/end pair only (text after a table is kept) -->',
    '',
    body.join('\n\n'),
    END,
  ].join('\n');
  doc = doc.slice(0, start) + section + doc.slice(end + END.length);
  writeFileSync(file, doc);
  note(`wrote ${file}`);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const write = !argv.includes('--no-write');
  const wanted = argv.filter((a) => !a.startsWith('--'));
  // A name picks that bench; a prefix that names none picks every bench it starts ("gpt2" → gpt2-step).
  const picks = (name: string, w: string) => name === w || (!BENCHES.some((b) => b.name === w) && name.startsWith(w));
  const selected = wanted.length === 0 ? BENCHES : BENCHES.filter((b) => wanted.some((w) => picks(b.name, w)));
  if (selected.length === 0) {
    console.error(`[bench] no benchmark matches ${wanted.join(' ')}; known: ${BENCHES.map((b) => b.name).join(' ')}`);
    process.exit(2);
  }
  const machine = cpuInfo().summary;
  note(`machine: ${machine}`);
  const results = new Map<string, BenchRow[]>();
  let failed = false;
  for (const b of selected) {
    note(`running ${b.name}`);
    try {
      const mod = await b.load();
      results.set(b.name, await mod.run());
    } catch (e) {
      failed = true;
      console.error(`[bench] ${b.name} failed:`, e);
    }
  }
  if (write && results.size > 0) writeReport(results, machine);
  if (failed) process.exitCode = 1;
}

await main();
