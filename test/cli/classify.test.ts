// `vera classify` end to end on the parity fixtures' classifiers (vocab 128) with a WordPiece tokenizer
// written here: logits and argmax equal transformers' for the fixtures' own input, id2label names with
// softmax probabilities best first, --top, adapters, ViT on PNG and JPEG files, and errors.

import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { PeftModel } from '../../src/adapters/peft-model.js';
import { noGrad } from '../../src/autograd/graph.js';
import { imageToTensor, loadImageProcessorConfig, readImage } from '../../src/io/image.js';
import { loadModel } from '../../src/models/auto.js';
import type { ModelInputs } from '../../src/models/pretrained.js';
import { tensor } from '../../src/tensor/creation.js';
import { VIT_PREPROCESSOR } from '../models/fixtures.js';
import { type Run, runVera } from '../helpers/cli.js';

const FIX = fileURLToPath(new URL('../../../test/parity/fixtures/', import.meta.url));

const vera = (...args: string[]): Promise<Run> => runVera('classify', args);

interface Result {
  labels: { label: string; id: number; score: number }[];
  logits: number[];
}

function json(r: Run): Result {
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, 'exactly one line on stdout');
  return JSON.parse(lines[0]!) as Result;
}

function close(got: number[], want: number[], what: string): void {
  assert.equal(got.length, want.length, what);
  got.forEach((v, i) =>
    assert.ok(Math.abs(v - want[i]!) <= 1e-4 + 1e-4 * Math.abs(want[i]!), `${what} ${i}: ${v} vs ${want[i]}`),
  );
}

// src/io/types/pngjs.d.ts declares pngjs's reader only; its synchronous writer takes {width, height, RGBA data}.
const pngWriter = (
  pngjs as unknown as { PNG: { sync: { write(png: { width: number; height: number; data: Buffer }): Buffer } } }
).PNG;

const argmax = (v: number[]) => v.indexOf(Math.max(...v));

/** Checks the ranking: every label once (unless cut by --top), best first, probabilities summing to 1. */
function checkRanking(out: Result, names: string[]): void {
  assert.equal(out.labels.length, out.logits.length);
  const sum = out.labels.reduce((a, l) => a + l.score, 0);
  assert.ok(Math.abs(sum - 1) < 1e-9, `probabilities sum to ${sum}`);
  for (let i = 1; i < out.labels.length; i++) assert.ok(out.labels[i - 1]!.score >= out.labels[i]!.score);
  for (const l of out.labels) assert.equal(l.label, names[l.id]);
  assert.equal(out.labels[0]!.id, argmax(out.logits));
}

// ---- model directories with a 128-token WordPiece tokenizer ("w1" … "w127", [UNK] = 0) ----------

const wordPieceJson = {
  version: '1.0',
  added_tokens: [
    { id: 0, content: '[UNK]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
  ],
  normalizer: null,
  pre_tokenizer: { type: 'WhitespaceSplit' },
  post_processor: null, // text and pair as they are, type ids 0 then 1: the fixtures' inputs exactly
  decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
  model: {
    type: 'WordPiece',
    unk_token: '[UNK]',
    continuing_subword_prefix: '##',
    max_input_chars_per_word: 100,
    vocab: Object.fromEntries(Array.from({ length: 128 }, (_, i) => [i === 0 ? '[UNK]' : `w${i}`, i])),
  },
};

const words = (ids: number[]) => ids.map((i) => `w${i}`).join(' ');

const root = mkdtempSync(join(tmpdir(), 'vera-classify-'));
after(() => rmSync(root, { recursive: true, force: true }));

function modelDir(name: string, extra: Record<string, string> = {}, tag = ''): string {
  const dir = join(root, name + tag);
  if (existsSync(dir)) return dir;
  mkdirSync(dir);
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(FIX, 'models', name, f), join(dir, f));
  for (const [f, text] of Object.entries(extra)) writeFileSync(join(dir, f), text);
  return dir;
}
const ROBERTA_LABELS = ['negative', 'neutral', 'positive'];

/** A fixture with the WordPiece tokenizer; RoBERTa's config gets id2label names (the others keep LABEL_i). */
function withTokenizer(name: string): string {
  const dir = modelDir(name, { 'tokenizer.json': JSON.stringify(wordPieceJson) });
  if (name === 'roberta-seqcls') {
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    config['id2label'] = Object.fromEntries(ROBERTA_LABELS.map((l, i) => [String(i), l]));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  }
  return dir;
}

const refs = <T>(path: string): T => JSON.parse(readFileSync(join(FIX, path, 'refs.json'), 'utf8')) as T;

describe('vera classify', () => {
  test("text classifiers: the fixtures' first row gives transformers' logits, argmax and id2label names", async () => {
    await Promise.all(
      ['bert-seqcls', 'roberta-seqcls', 'gpt2-seqcls', 'llama-seqcls'].map(async (name) => {
        const r = refs<{ inputs: Record<string, number[]>; logits: number[]; logits_shape: number[] }>(
          `models/${name}`,
        );
        const n = r.logits_shape[1]!;
        const ids = r.inputs['input_ids']!.slice(0, 7); // row 0 is unpadded
        const types = r.inputs['token_type_ids']?.slice(0, 7) ?? ids.map(() => 0);
        const split = types.indexOf(1); // BERT's row is a pair: type 0, then type 1
        const text =
          split === -1
            ? ['--text', words(ids)]
            : ['--text', words(ids.slice(0, split)), '--pair', words(ids.slice(split))];
        const names = name === 'roberta-seqcls' ? ROBERTA_LABELS : Array.from({ length: n }, (_, i) => `LABEL_${i}`);
        const out = json(await vera('--model', withTokenizer(name), ...text, '--json'));
        close(out.logits, r.logits.slice(0, n), name);
        checkRanking(out, names);
        assert.equal(out.labels[0]!.id, argmax(r.logits.slice(0, n)), name);
      }),
    );
  });

  test('the plain output lists label and probability per line, best first; --top limits it', async () => {
    const ids = refs<{ inputs: Record<string, number[]> }>('models/roberta-seqcls').inputs['input_ids']!;
    const args = ['--model', withTokenizer('roberta-seqcls'), '--text', words(ids.slice(0, 7))];
    const [all, top, topJson] = await Promise.all([
      vera(...args),
      vera(...args, '--top', '2'),
      vera(...args, '--top', '1', '--json'),
    ]);
    assert.equal(all.status, 0, all.stderr);
    assert.equal(all.stderr, '', 'no progress lines when stderr is not a terminal');
    const rows = all.stdout
      .trimEnd()
      .split('\n')
      .map((l) => /^(\S+) +(0\.\d{4}|1\.0000)$/.exec(l));
    assert.equal(rows.length, 3);
    assert.ok(
      rows.every((m) => m !== null),
      all.stdout,
    );
    assert.ok(rows.every((m) => ROBERTA_LABELS.includes(m![1]!)));
    const scores = rows.map((m) => Number(m![2]));
    assert.ok(Math.abs(scores.reduce((a, b) => a + b, 0) - 1) < 2e-4);
    assert.deepEqual(
      [...scores].sort((a, b) => b - a),
      scores,
    );
    assert.equal(top.stdout, all.stdout.split('\n').slice(0, 2).join('\n') + '\n');
    assert.equal(json(topJson).labels.length, 1);
    assert.equal(json(topJson).logits.length, 3, 'the logits stay complete');
  });

  test("an adapter changes the output (PEFT's logits, merged or not)", async () => {
    const want = refs<{ adapted: number[] }>('adapters/bert-seqcls-vera').adapted.slice(0, 2);
    const args = [
      '--model',
      withTokenizer('bert-seqcls'),
      '--text',
      words([68, 15, 23, 52]),
      '--pair',
      words([53, 99, 125]),
    ];
    const adapter = ['--adapter', join(FIX, 'adapters/bert-seqcls-vera')];
    const [plain, adapted, merged] = (
      await Promise.all([
        vera(...args, '--json'),
        vera(...args, ...adapter, '--json'),
        vera(...args, ...adapter, '--merge', '--json'),
      ])
    ).map(json);
    for (const out of [adapted!, merged!]) {
      close(out.logits, want, 'adapted');
      assert.notEqual(out.labels[0]!.id, plain!.labels[0]!.id, 'the adapter flips the prediction');
    }
  });

  test("BERT's vocab.txt tokenizer adds [CLS] and [SEP]", async () => {
    const vocab = Array.from({ length: 128 }, (_, i) => ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'][i] ?? `w${i}`);
    const dir = modelDir('bert-seqcls', { 'vocab.txt': vocab.join('\n') + '\n' }, '-vocab-txt');
    const run = vera('--model', dir, '--text', 'w68 w15 w23', '--json');
    const model = loadModel(dir);
    const want = noGrad(() =>
      model
        .forward({ inputIds: tensor(Int32Array.from([2, 68, 15, 23, 3]), { dtype: 'i32', shape: [1, 5] }) })
        .toNumbers(),
    );
    const out = json(await run);
    close(out.logits, want, 'vocab.txt');
    checkRanking(out, ['LABEL_0', 'LABEL_1']);
  });

  describe('images (ViT, image_size 16)', () => {
    const dir = modelDir('vit-imgcls', { 'preprocessor_config.json': VIT_PREPROCESSOR });
    const [png, jpg] = writeImages();

    /** The logits the library computes in-process for the same file (its preprocessing is tested against Pillow elsewhere). */
    const expected = (file: string, adapter?: string): number[] => {
      const model = loadModel(dir);
      if (adapter) PeftModel.fromPretrained(model, adapter);
      const inputs: ModelInputs = { pixelValues: imageToTensor(readImage(file), loadImageProcessorConfig(dir)) };
      return noGrad(() => model.forward(inputs).toNumbers());
    };
    const names = ['LABEL_0', 'LABEL_1', 'LABEL_2', 'LABEL_3', 'LABEL_4'];

    test('a PNG and a JPEG give the logits of the preprocessed image; --top limits the lines', async () => {
      const [fromPng, fromJpg, top] = await Promise.all([
        vera('--model', dir, '--image', png, '--json'),
        vera('--model', dir, '--image', jpg, '--json'),
        vera('--model', dir, '--image', png, '--top', '3'),
      ]);
      for (const [run, file] of [
        [fromPng, png],
        [fromJpg, jpg],
      ] as const) {
        const out = json(run);
        close(out.logits, expected(file), file);
        checkRanking(out, names);
      }
      assert.equal(top.status, 0, top.stderr);
      assert.equal(top.stdout.trimEnd().split('\n').length, 3);
    });

    test('with a PEFT adapter (VeRA + a trained head) the logits change', async () => {
      const adapter = join(FIX, 'adapters/vit-vera-head');
      const out = json(await vera('--model', dir, '--image', png, '--adapter', adapter, '--json'));
      close(out.logits, expected(png, adapter), 'adapted');
      const base = expected(png);
      assert.ok(out.logits.some((v, i) => Math.abs(v - base[i]!) > 1e-3));
    });
  });

  test('--help, and errors: one line on stderr, non-zero exit', async () => {
    const help = await vera('--help');
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--image FILE/);
    const png = join(root, 'image.png');
    const bert = withTokenizer('bert-seqcls');
    const cases: [string[], RegExp][] = [
      [['--model', join(FIX, 'models/roberta-seqcls'), '--text', 'w1'], /tokenizer files tokenizer\.json/],
      [['--model', join(FIX, 'models/vit-imgcls'), '--image', png], /preprocessor_config\.json: not found/],
      [['--model', join(FIX, 'models/llama-lm'), '--text', 'w1'], /LlamaForCausalLM \(causal LM\)/],
      [['--model', bert, '--image', png], /text classifier.*pass --text/],
      [['--model', join(FIX, 'models/vit-imgcls'), '--text', 'w1'], /image classifier.*pass --image/],
      [['--model', bert, '--text', 'w1', '--top', '0'], /--top must be an integer ≥ 1/],
      [['--model', bert, '--image', png, '--pair', 'w1'], /--pair needs --text/],
      [['--model', bert, '--text', 'w1', '--image', png], /exactly one of --text and --image/],
      [['--model', bert], /exactly one of --text and --image/],
      [['--model', bert, '--text', 'w1', '--merge'], /--merge needs --adapter/],
      [['--model', modelDir('vit-imgcls'), '--image', join(root, 'missing.png')], /missing\.png/],
      [['--text', 'w1'], /--model is required/],
      [['--model', bert, '--text', words(new Array<number>(70).fill(5))], /70 tokens; .* takes at most 64/],
    ];
    const runs = await Promise.all(cases.map(([args]) => vera(...args)));
    runs.forEach((r, i) => {
      const what = cases[i]![0].join(' ');
      assert.equal(r.status, 1, `${what}: ${r.stderr}`);
      assert.match(r.stderr, cases[i]![1], what);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.equal(r.stdout, '', what);
    });
  });
});

/** A 20×12 RGB pattern as PNG and JPEG files (resized to 16×16 by the preprocessing). */
function writeImages(): [string, string] {
  const [w, h] = [20, 12];
  const rgba = Buffer.alloc(w * h * 4);
  for (let i = 0; i < w * h; i++) {
    const [x, y] = [i % w, Math.floor(i / w)];
    rgba.set([(x * 37 + y * 11) % 256, (y * 53 + 7 * x * x) % 256, (x * y * 29 + 90) % 256, 255], i * 4);
  }
  const png = join(root, 'image.png');
  writeFileSync(png, pngWriter.sync.write({ width: w, height: h, data: rgba }));
  const jpg = join(root, 'image.jpg');
  writeFileSync(jpg, jpeg.encode({ data: rgba, width: w, height: h }, 90).data);
  return [png, jpg];
}
