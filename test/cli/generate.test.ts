// `vera generate` end to end on the parity fixtures' tiny causal LMs (vocab 128) with a byte-level BPE
// tokenizer written here: greedy tokens equal transformers', streamed text equals decode (UTF-8 kept
// whole), EOS / stop strings / max tokens, chat templates, seeded sampling, adapters, and errors.

import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { type Run, runVera } from '../helpers/cli.js';

const FIX = fileURLToPath(new URL('../../../test/parity/fixtures/', import.meta.url));

const vera = (...args: string[]): Promise<Run> => runVera('generate', args);

interface Result {
  prompt_ids: number[];
  generated_ids: number[];
  text: string | null;
  finish_reason: 'eos' | 'stop' | 'length';
  tokens_per_second: number;
}

function json(r: Run): Result {
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, 'exactly one line on stdout');
  return JSON.parse(lines[0]!) as Result;
}

const greedy = (name: string) =>
  JSON.parse(readFileSync(join(FIX, 'models', name, 'refs.json'), 'utf8')) as {
    greedy_prompt: number[];
    greedy_tokens: number[];
  };

// ---- a 128-token byte-level BPE tokenizer ------------------------------------------------------

/** GPT-2's bytes_to_unicode: the character ByteLevel uses for each byte. */
function byteChar(b: number): string {
  const printable = (x: number) => (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
  if (printable(b)) return String.fromCodePoint(b);
  let n = 0;
  for (let x = 0; x < b; x++) if (!printable(x)) n++;
  return String.fromCodePoint(256 + n);
}

/**
 * ids 0–2 are <unk> <s> </s> (special; </s> is the fixtures' eos_token_id 2). Llama's greedy tokens
 * 106, 32 are the two bytes of "é" (0xC3 0xA9) and 85 is "z" + 0xC3, so its greedy text carries "é"
 * split over tokens, which a token-by-token decode would turn into U+FFFD. The other ids are the
 * printable ASCII bytes and a few merges.
 */
function bpeTokenizerJson(): object {
  const pieces = new Array<string | undefined>(128);
  pieces[106] = byteChar(0xc3);
  pieces[32] = byteChar(0xa9);
  pieces[85] = 'z' + byteChar(0xc3);
  const merges: [string, string][] = [['z', byteChar(0xc3)]];
  const ascii = Array.from({ length: 95 }, (_, i) => byteChar(0x20 + i));
  const pairs = [
    'he',
    ' t',
    'th',
    'in',
    'er',
    'an',
    're',
    'on',
    ' a',
    'en',
    'at',
    'ou',
    'ed',
    'ha',
    'to',
    'or',
    'it',
    'is',
    'hi',
    'es',
    'ng',
    ' s',
    ' w',
    ' h',
    ' o',
    ' c',
    'nd',
  ];
  const extra = pairs.map((p) => [...p].map((c) => byteChar(c.charCodeAt(0))) as [string, string]);
  const free = [...ascii, ...extra.map(([a, b]) => a + b)];
  merges.push(...extra);
  for (let id = 3; id < 128; id++) if (pieces[id] === undefined) pieces[id] = free.shift();
  assert.equal(free.length, 0, 'every id gets a piece');
  const specials = ['<unk>', '<s>', '</s>'];
  const vocab: Record<string, number> = {};
  specials.forEach((s, id) => (vocab[s] = id));
  pieces.forEach((p, id) => p !== undefined && (vocab[p] = id));
  return {
    version: '1.0',
    added_tokens: specials.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

const TOKENIZER_CONFIG = {
  bos_token: '<s>',
  eos_token: '</s>',
  unk_token: '<unk>',
  chat_template:
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}",
};

const root = mkdtempSync(join(tmpdir(), 'vera-generate-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** A copy of a fixture model, with the test tokenizer unless `tokenizer` is false. */
function modelDir(name: string, tokenizer = true): string {
  const dir = join(root, `${name}${tokenizer ? '' : '-bare'}`);
  if (existsSync(dir)) return dir;
  mkdirSync(dir);
  for (const f of ['config.json', 'model.safetensors', 'generation_config.json']) {
    const src = join(FIX, 'models', name, f);
    if (existsSync(src)) copyFileSync(src, join(dir, f));
  }
  if (tokenizer) {
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(bpeTokenizerJson()));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(TOKENIZER_CONFIG));
  }
  return dir;
}

describe('vera generate', () => {
  const llama = greedy('llama-lm');
  const ids = llama.greedy_prompt.join(',');
  const tok = Tokenizer.fromDir(modelDir('llama-lm'));
  const decoded = tok.decode(llama.greedy_tokens, { skipSpecialTokens: true });

  test("greedy tokens from --ids equal transformers' (GPT-2, Llama; with and without --json)", async () => {
    await Promise.all(
      ['llama-lm', 'gpt2-lm'].map(async (name) => {
        const ref = greedy(name);
        const args = ['--model', modelDir(name, false), '--ids', ref.greedy_prompt.join(','), '--max-new-tokens', '20'];
        const [withJson, plain] = await Promise.all([vera(...args, '--json'), vera(...args)]);
        const out = json(withJson);
        assert.deepEqual(out.prompt_ids, ref.greedy_prompt);
        assert.deepEqual(out.generated_ids, ref.greedy_tokens, name);
        assert.equal(out.finish_reason, 'length');
        assert.equal(out.text, null, 'no tokenizer: no text');
        assert.ok(out.tokens_per_second > 0);
        // Without a tokenizer the ids stream instead of text.
        assert.equal(plain.status, 0, plain.stderr);
        assert.equal(plain.stdout, `${ref.greedy_tokens.join(' ')}\n`);
        assert.equal(plain.stderr, '', 'no progress lines when stderr is not a terminal');
      }),
    );
  });

  test('the streamed text equals the decode of the generated ids, characters split over tokens kept whole', async () => {
    assert.ok(decoded.includes('é'), 'the fixture text carries a two-byte character');
    const args = ['--model', modelDir('llama-lm'), '--ids', ids, '--max-new-tokens', '20'];
    const [plain, withJson, verbose] = await Promise.all([
      vera(...args),
      vera(...args, '--json'),
      vera(...args, '--verbose'),
    ]);
    assert.equal(plain.status, 0, plain.stderr);
    assert.equal(plain.stdout, `${decoded}\n`);
    assert.ok(!plain.stdout.includes('\uFFFD'));
    const out = json(withJson);
    assert.deepEqual(out.generated_ids, llama.greedy_tokens);
    assert.equal(out.text, decoded);
    assert.equal(verbose.stdout, plain.stdout, 'progress never goes to stdout');
    assert.match(verbose.stderr, /loaded LlamaForCausalLM[\s\S]*20 token\(s\) in .* tokens\/s\); finish: length/);
  });

  test('EOS ends generation (finish_reason "eos", the special token not printed)', async () => {
    // Mistral's greedy continuation produces </s> (id 2) as its 11th token.
    const ref = greedy('mistral-lm');
    const end = ref.greedy_tokens.indexOf(2);
    assert.ok(end > 0);
    const args = ['--model', modelDir('mistral-lm'), '--ids', ref.greedy_prompt.join(','), '--max-new-tokens', '20'];
    const [withJson, plain] = await Promise.all([vera(...args, '--json'), vera(...args)]);
    const out = json(withJson);
    assert.deepEqual(out.generated_ids, ref.greedy_tokens.slice(0, end + 1));
    assert.equal(out.finish_reason, 'eos');
    const text = tok.decode(ref.greedy_tokens.slice(0, end), { skipSpecialTokens: true });
    assert.equal(out.text, text);
    assert.equal(plain.stdout, `${text}\n`);
  });

  test('--max-new-tokens bounds the output; --stop cuts the text before the stop string', async () => {
    // A stop string from the middle of the greedy text: generation ends at the token completing it.
    const at = tok.decode(llama.greedy_tokens.slice(0, 8), { skipSpecialTokens: true }).length;
    const stop = decoded.slice(at, at + 3);
    const first = decoded.indexOf(stop);
    let k = 1;
    while (!tok.decode(llama.greedy_tokens.slice(0, k), { skipSpecialTokens: true }).includes(stop)) k++;
    const args = ['--model', modelDir('llama-lm'), '--ids', ids, '--max-new-tokens', '20', '--stop', 'never'];
    const [five, withJson, plain] = await Promise.all([
      vera('--model', modelDir('llama-lm'), '--ids', ids, '--max-new-tokens', '5', '--json'),
      vera(...args, '--stop', stop, '--json'),
      vera(...args, '--stop', stop),
    ]);
    assert.deepEqual(json(five).generated_ids, llama.greedy_tokens.slice(0, 5));
    assert.equal(json(five).finish_reason, 'length');
    const out = json(withJson);
    assert.equal(out.finish_reason, 'stop');
    assert.equal(out.text, decoded.slice(0, first));
    assert.deepEqual(out.generated_ids, llama.greedy_tokens.slice(0, k));
    assert.equal(plain.stdout, `${decoded.slice(0, first)}\n`);
  });

  test('--prompt adds the special tokens; --chat renders the chat template with the generation prompt', async () => {
    const [prompt, chat] = await Promise.all([
      vera('--model', modelDir('llama-lm'), '--prompt', 'the café', '--max-new-tokens', '3', '--json'),
      vera('--model', modelDir('llama-lm'), '--chat', 'hi there', '--max-new-tokens', '2', '--json'),
    ]);
    const p = json(prompt);
    assert.deepEqual(p.prompt_ids, tok.encode('the café').ids);
    assert.equal(p.prompt_ids[0], 1, '<s> first');
    assert.equal(tok.decode(p.prompt_ids, { skipSpecialTokens: true }), 'the café');
    assert.equal(p.generated_ids.length, 3);
    assert.equal(tok.decode(json(chat).prompt_ids), '<|user|>hi there<|assistant|>');
  });

  test('sampling is reproducible with --seed; top-k 1 is greedy; the repetition penalty applies', async () => {
    const args = ['--model', modelDir('llama-lm'), '--ids', ids, '--max-new-tokens', '12', '--json'];
    const sample = [...args, '--temperature', '1.5'];
    const [a, b, c, k1, penalized] = (
      await Promise.all([
        vera(...sample, '--seed', '7'),
        vera(...sample, '--seed', '7'),
        vera(...sample, '--seed', '8'),
        vera(...sample, '--seed', '7', '--top-k', '1', '--top-p', '0.9'),
        vera(...args, '--repetition-penalty', '3'),
      ])
    ).map(json);
    const greedy12 = llama.greedy_tokens.slice(0, 12);
    assert.deepEqual(a!.generated_ids, b!.generated_ids);
    assert.equal(a!.text, b!.text);
    assert.notDeepEqual(a!.generated_ids, c!.generated_ids);
    assert.notDeepEqual(a!.generated_ids, greedy12);
    assert.deepEqual(k1!.generated_ids, greedy12);
    assert.notDeepEqual(penalized!.generated_ids, greedy12);
  });

  test("an adapter changes the output: the first token is PEFT's argmax, merged or not", async () => {
    const refs = JSON.parse(readFileSync(join(FIX, 'adapters/llama-lora/refs.json'), 'utf8')) as {
      adapted: number[];
    };
    // Row 0 of the fixtures' batch (7 unpadded tokens); the next token is the argmax of its last logits row.
    const prompt = [68, 15, 23, 52, 53, 99, 125];
    const row = refs.adapted.slice(6 * 128, 7 * 128);
    const want = row.indexOf(Math.max(...row));
    const args = ['--model', modelDir('llama-lm'), '--ids', prompt.join(','), '--max-new-tokens', '4', '--json'];
    const adapter = ['--adapter', join(FIX, 'adapters/llama-lora')];
    const [base, adapted, merged] = (
      await Promise.all([vera(...args), vera(...args, ...adapter), vera(...args, ...adapter, '--merge')])
    ).map(json);
    for (const out of [adapted!, merged!]) {
      assert.equal(out.generated_ids[0], want);
      assert.notDeepEqual(out.generated_ids, base!.generated_ids);
    }
  });

  test('--help, and errors: one line on stderr, non-zero exit', async () => {
    const help = await vera('--help');
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--max_new_tokens N/);
    const llamaDir = modelDir('llama-lm');
    const bare = modelDir('llama-lm', false);
    const cases: [string[], RegExp][] = [
      [['--model', bare, '--prompt', 'hi'], /tokenizer files tokenizer\.json, vocab\.json \+ merges\.txt, vocab\.txt/],
      [['--model', bare, '--ids', '1', '--stop', 'x'], /tokenizer files/],
      [['--model', join(FIX, 'models/bert-seqcls'), '--ids', '1'], /BertForSequenceClassification.*causal LM/],
      [['--model', llamaDir, '--ids', '1', '--temperature', 'hot'], /--temperature must be/],
      [['--model', llamaDir, '--ids', '1', '--temperature=-1'], /--temperature must be a number ≥ 0/],
      [['--model', llamaDir, '--ids', '1', '--temperature', '-1'], /argument is ambiguous.*--help/],
      [['--model', llamaDir, '--ids', '1', '--max-new-tokens', '2.5'], /--max_new_tokens must be/],
      [['--model', llamaDir, '--ids', '1', '--top-p', '0', '--temperature', '1'], /--top_p must be/],
      [['--model', llamaDir, '--ids', '1', '--prompt', 'x'], /exactly one of --prompt, --chat/],
      [['--model', llamaDir, '--ids', '1,500'], /id 500 is outside the model's vocabulary/],
      [['--model', llamaDir, '--ids', '1', '--merge'], /--merge needs --adapter/],
      [['--model', llamaDir, '--ids', '1', '--bogus'], /Unknown option '--bogus'/],
      [['--model', join(root, 'nonexistent'), '--ids', '1'], /nonexistent/],
      [
        ['--model', modelDir('gpt2-lm', false), '--ids', '1,2,3,4', '--max-new-tokens', '61'],
        /exceeds .* n_positions 64/,
      ],
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
