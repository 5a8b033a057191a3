// Command line of the base-model rebuild (scripts/base-model/rebuild.sh runs the steps in order):
//   node dist/src/pretrain/cli.js corpus | tokenizer | encode | train | export | sample | eval [--flags]
// Every step reads and writes fixed places under .cache/ (corpus, tokens, checkpoint) and assets/base-model/.

import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { getBackend } from '../backends/registry.js';
import { Tokenizer } from '../io/tokenizer.js';
import type { TokenizerJson } from '../io/tokenizers/convert.js';
import { generate } from '../generate/generate.js';
import { loadModel } from '../models/auto.js';
import type { PreTrainedModel } from '../models/pretrained.js';
import { BpeEncoder, countWords, toTokenizerJson, trainBpe } from './bpe.js';
import { EOT, buildCorpus, splitDocs } from './corpus.js';
import { bpeModelFromJson, encodeDocs, evalBlocks, readTokens, writeTokens } from './data.js';
import {
  DEFAULT_TRAIN,
  type ModelShape,
  type StoreDType,
  type TrainOptions,
  evaluate,
  exportModel,
  modelFromCheckpoint,
  pretrain,
} from './train.js';
import type { GPT2LMHeadModel } from '../models/gpt2/model.js';

const CORPUS = '.cache/corpus';
const TOKENS = '.cache/pretrain';
const CKPT = '.cache/pretrain/ckpt';
const ASSETS = 'assets/base-model';

function parseFlags(argv: string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`[pretrain] unexpected argument ${JSON.stringify(a)}`);
    const eq = a.indexOf('=');
    if (eq > 0) flags.set(a.slice(2, eq), a.slice(eq + 1));
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) flags.set(a.slice(2), argv[++i]!);
    else flags.set(a.slice(2), 'true');
  }
  return flags;
}

const num = (f: Map<string, string>, k: string, def: number) => (f.has(k) ? Number(f.get(k)) : def);

function logger(file: string | null): (line: string) => void {
  if (file) mkdirSync(dirname(file), { recursive: true });
  return (line) => {
    const stamped = `[${new Date().toISOString()}] ${line}`;
    console.log(stamped);
    if (file) appendFileSync(file, `${stamped}\n`);
  };
}

function cmdCorpus(f: Map<string, string>): void {
  const m = buildCorpus(f.get('cache') ?? CORPUS, f.get('out') ?? CORPUS, num(f, 'valid-per-mille', 30), console.log);
  for (const [src, s] of Object.entries(m.perSource))
    console.log(
      `${src.padEnd(10)} train ${s.train.docs} docs ${s.train.words} words | valid ${s.valid.docs} docs ${s.valid.words} words`,
    );
  console.log(
    `train: ${m.train.words} words, ${m.train.bytes} bytes; valid: ${m.valid.words} words, ${m.valid.bytes} bytes`,
  );
}

function cmdTokenizer(f: Map<string, string>): void {
  const vocabSize = num(f, 'vocab', 4096);
  const out = f.get('out') ?? ASSETS;
  const t0 = performance.now();
  const docs = splitDocs(readFileSync(join(CORPUS, 'train.txt'), 'utf8'));
  const counts = countWords(docs);
  console.log(`${counts.size} pre-token types (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  const model = trainBpe(counts, { vocabSize, specialTokens: [EOT] });
  console.log(`${model.merges.length} merges (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'tokenizer.json'), `${JSON.stringify(toTokenizerJson(model), null, 2)}\n`);
  const config = {
    tokenizer_class: 'GPT2Tokenizer',
    add_bos_token: false,
    add_prefix_space: false,
    bos_token: EOT,
    eos_token: EOT,
    unk_token: EOT,
    model_max_length: num(f, 'max-length', 128),
    clean_up_tokenization_spaces: false,
    added_tokens_decoder: {
      [String(model.vocab.get(EOT))]: {
        content: EOT,
        lstrip: false,
        normalized: true,
        rstrip: false,
        single_word: false,
        special: true,
      },
    },
  };
  writeFileSync(join(out, 'tokenizer_config.json'), `${JSON.stringify(config, null, 2)}\n`);
  const enc = new BpeEncoder(model);
  for (const split of ['train', 'valid']) {
    const ds = splitDocs(readFileSync(join(CORPUS, `${split}.txt`), 'utf8'));
    const bytes = ds.reduce((n, d) => n + Buffer.byteLength(d), 0);
    const tokens = ds.reduce((n, d) => n + enc.encode(d).length, 0);
    console.log(`${split}: ${tokens} tokens, ${(bytes / tokens).toFixed(3)} bytes/token`);
  }
}

/** Encodes train/valid with our encoder, after checking it against the shipped tokenizer on the validation text. */
function cmdEncode(f: Map<string, string>): void {
  const dir = f.get('tokenizer') ?? ASSETS;
  const json = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as TokenizerJson;
  const tok = Tokenizer.fromDir(dir);
  const enc = new BpeEncoder(bpeModelFromJson(json));
  const eos = tok.eosTokenId;
  if (eos === null) throw new Error('[pretrain] the tokenizer has no eos token');
  mkdirSync(TOKENS, { recursive: true });
  for (const split of ['valid', 'train']) {
    const docs = splitDocs(readFileSync(join(CORPUS, `${split}.txt`), 'utf8'));
    if (split === 'valid') {
      for (const d of docs) {
        const a = tok.encode(d).ids.join(',');
        if (a !== enc.encode(d).join(',')) throw new Error('[pretrain] our BPE encoder disagrees with the tokenizer');
      }
      console.log(`encoder agrees with tokenizer.json on ${docs.length} validation documents`);
    }
    const ids = encodeDocs(docs, enc, eos);
    writeTokens(join(TOKENS, `${split}.bin`), ids);
    console.log(`${split}: ${ids.length} tokens → ${join(TOKENS, `${split}.bin`)}`);
  }
}

function shapeFrom(f: Map<string, string>, vocabSize: number, eosTokenId: number): ModelShape {
  return {
    nLayer: num(f, 'layers', 4),
    nEmbd: num(f, 'embd', 256),
    nHead: num(f, 'heads', 4),
    nPositions: num(f, 'positions', 128),
    vocabSize,
    eosTokenId,
    dropout: num(f, 'dropout', 0.1),
  };
}

function trainOptions(f: Map<string, string>): TrainOptions {
  const o: TrainOptions = { ...DEFAULT_TRAIN };
  const keys: [keyof TrainOptions, string][] = [
    ['steps', 'steps'],
    ['batch', 'batch'],
    ['lr', 'lr'],
    ['minLr', 'min-lr'],
    ['warmup', 'warmup'],
    ['weightDecay', 'weight-decay'],
    ['beta1', 'beta1'],
    ['beta2', 'beta2'],
    ['clip', 'clip'],
    ['seed', 'seed'],
    ['evalEvery', 'eval-every'],
    ['evalBlocks', 'eval-blocks'],
    ['logEvery', 'log-every'],
    ['checkpointEverySec', 'checkpoint-every'],
    ['threads', 'threads'],
  ];
  for (const [k, flag] of keys) o[k] = num(f, flag, o[k]);
  return o;
}

function storeDType(f: Map<string, string>, model: PreTrainedModel): StoreDType {
  const d = f.get('dtype') ?? 'auto';
  if (d === 'f32' || d === 'f16' || d === 'bf16') return d;
  // F32 while it fits the 25 MB budget (exact); F16 above (our loader and transformers read both).
  return model.numParameters() * 4 <= 24e6 ? 'f32' : 'f16';
}

function cmdTrain(f: Map<string, string>): void {
  const tok = Tokenizer.fromDir(f.get('tokenizer') ?? ASSETS);
  const shape = shapeFrom(f, tok.vocabSize, tok.eosTokenId!);
  const opts = trainOptions(f);
  const log = logger(f.get('log') ?? join(TOKENS, 'train.log'));
  const { model, state } = pretrain({
    train: readTokens(join(TOKENS, 'train.bin')),
    valid: readTokens(join(TOKENS, 'valid.bin')),
    shape,
    opts,
    backend: getBackend('native'),
    ckptDir: f.get('ckpt') ?? CKPT,
    log,
    ...(f.has('max-steps-now') ? { maxStepsNow: num(f, 'max-steps-now', 0) } : {}),
  });
  if (state.step >= opts.steps && f.get('export') !== 'false') {
    const dtype = storeDType(f, model);
    exportModel(model, f.get('out') ?? ASSETS, dtype);
    log(`exported to ${f.get('out') ?? ASSETS} (${dtype})`);
  }
  model.dispose();
}

function cmdExport(f: Map<string, string>): void {
  const { model, state } = modelFromCheckpoint(f.get('ckpt') ?? CKPT, getBackend('native'));
  const dtype = storeDType(f, model);
  exportModel(model, f.get('out') ?? ASSETS, dtype);
  console.log(`exported step ${state.step} to ${f.get('out') ?? ASSETS} (${dtype})`);
  model.dispose();
}

function textOf(tok: Tokenizer, ids: readonly number[]): string {
  return tok.decode(ids, { skipSpecialTokens: false });
}

function cmdSample(f: Map<string, string>): void {
  const dir = f.get('model') ?? ASSETS;
  getBackend('native').setThreads?.(num(f, 'threads', 2));
  const model = loadModel(dir);
  const tok = Tokenizer.fromDir(dir);
  const prompts = f.has('prompt')
    ? [f.get('prompt')!]
    : ['In the beginning', 'It is a truth universally acknowledged', 'The President'];
  const maxNewTokens = num(f, 'tokens', 40);
  for (const p of prompts) {
    const ids = tok.encode(p).ids;
    const greedy = generate(model, [ids], { maxNewTokens, repetitionPenalty: num(f, 'repetition-penalty', 1) })[0]!;
    const sampled = generate(model, [ids], {
      maxNewTokens,
      doSample: true,
      temperature: 0.8,
      topK: 40,
      seed: num(f, 'seed', 0),
    })[0]!;
    console.log(`greedy : ${JSON.stringify(p + textOf(tok, greedy))}`);
    console.log(`sampled: ${JSON.stringify(p + textOf(tok, sampled))}`);
  }
  model.dispose();
}

/** Perplexity of a shipped model on the held-out split (or any text file with --text). */
function cmdEval(f: Map<string, string>): void {
  const dir = f.get('model') ?? ASSETS;
  getBackend('native').setThreads?.(num(f, 'threads', 2));
  const model = loadModel(dir) as GPT2LMHeadModel;
  const tok = Tokenizer.fromDir(dir);
  const docs = splitDocs(readFileSync(f.get('text') ?? join(CORPUS, 'valid.txt'), 'utf8'));
  const ids: number[] = [];
  for (const d of docs) ids.push(...tok.encode(d).ids, tok.eosTokenId!);
  const loss = evaluate(model, evalBlocks(Uint16Array.from(ids), model.cfg.nPositions));
  console.log(
    `${docs.length} documents, ${ids.length} tokens: loss ${loss.toFixed(4)}, perplexity ${Math.exp(loss).toFixed(2)}`,
  );
  model.dispose();
}

const COMMANDS: Record<string, (f: Map<string, string>) => void> = {
  corpus: cmdCorpus,
  tokenizer: cmdTokenizer,
  encode: cmdEncode,
  train: cmdTrain,
  export: cmdExport,
  sample: cmdSample,
  eval: cmdEval,
};

const [cmd, ...rest] = process.argv.slice(2);
const fn = cmd === undefined ? undefined : COMMANDS[cmd];
if (!fn) {
  console.error(`usage: node dist/src/pretrain/cli.js <${Object.keys(COMMANDS).join('|')}> [--flag value ...]`);
  process.exit(2);
}
fn(parseFlags(rest));
