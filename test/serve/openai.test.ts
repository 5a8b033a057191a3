// `vera serve` through the official openai npm client on a real socket: models.list, completions and chat
// completions (streamed and not) with `model` = an adapter, answering the tokens the library's generate()
// gives with that adapter alone; stop strings, n, include_usage, error shapes, /metrics, a disconnect
// cancelling its generation, /v1/embeddings (float and base64) and vLLM's /classify on a BERT fixture.

import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { getPeftModel, veraConfig } from '../../src/adapters/index.js';
import { loadBaseFor } from '../../src/adapters/load.js';
import { PeftModel } from '../../src/adapters/peft-model.js';
import { noGrad } from '../../src/autograd/graph.js';
import { generate } from '../../src/generate/generate.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { loadModel } from '../../src/models/auto.js';
import type { BertForSequenceClassification } from '../../src/models/bert/model.js';
import { AdapterServer } from '../../src/serve/server.js';
import { slowStore } from './helpers.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { scope } from '../../src/tensor/scope.js';
import { fixtureModel, scratch } from '../train/helpers.js';

const ADAPTER_FIXTURES = fileURLToPath(new URL('../../../test/parity/fixtures/adapters/', import.meta.url));
const { dir: root, cleanup } = scratch('serve-openai');
const servers: AdapterServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
  cleanup();
});

let gpt2: string;
let chatModel: string;
let bert: string;
const lm = () => join(root, 'lm');

async function start(opts: Partial<Parameters<typeof AdapterServer.open>[0]> = {}) {
  const server = await AdapterServer.open({ model: chatModel, adapters: lm(), batchWindowMs: 5, ...opts });
  servers.push(server);
  const port = await server.listen(0);
  const url = `http://127.0.0.1:${port}`;
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x', maxRetries: 0 });
  return { server, url, client };
}

/** What the library gives: greedy tokens of `ids` with `adapter` alone, and their text. */
function expected(adapter: string | null, ids: number[], maxNewTokens: number): { tokens: number[]; text: string } {
  const model = loadModel(chatModel);
  if (adapter) PeftModel.fromPretrained(model, join(lm(), adapter));
  const tokens = generate(model, [ids], { maxNewTokens })[0]!;
  const text = Tokenizer.fromDir(chatModel).decode(tokens, {
    skipSpecialTokens: true,
    cleanUpTokenizationSpaces: false,
  });
  return { tokens, text };
}

const encode = (text: string) => Tokenizer.fromDir(chatModel).encode(text).ids;

before(() => {
  gpt2 = fixtureModel(root, 'gpt2-lm');
  // A copy with a chat template, so that chat completions have one to render.
  chatModel = join(root, 'gpt2-chat');
  cpSync(gpt2, chatModel, { recursive: true });
  const config = JSON.parse(readFileSync(join(chatModel, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  config['chat_template'] =
    "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}w5{% endif %}";
  writeFileSync(join(chatModel, 'tokenizer_config.json'), JSON.stringify(config));
  // Language-model adapters with seeded λ values (an identity adapter would test nothing).
  for (const [name, seed] of [
    ['style-a', 1],
    ['style-b', 2],
  ] as const) {
    const peft = getPeftModel(loadModel(chatModel), veraConfig({ r: 8, target_modules: ['c_attn', 'c_fc'] }));
    const g = new Generator(seed);
    noGrad(() => {
      for (const [, t] of peft.trainableParameters()) {
        const v = tensor(g.uniform(t.numel, -1, 1), { shape: t.shape });
        t.backend.copy(t.view('λ'), v.view('λ'));
      }
    });
    mkdirSync(join(lm(), name), { recursive: true });
    peft.savePretrained(join(lm(), name));
  }
  bert = fixtureModel(root, 'bert-seqcls');
  cpSync(join(ADAPTER_FIXTURES, 'bert-seqcls-vera'), join(root, 'bert-adapters', 'topic'), { recursive: true });
});

describe('vera serve with the openai client', () => {
  test('models.list: the base, then every adapter with the base as parent', async () => {
    const { client, server } = await start();
    const models = [];
    for await (const m of client.models.list()) models.push(m);
    assert.deepEqual(
      models.map((m) => [m.id, m.object, (m as unknown as { parent: string | null }).parent]),
      [
        ['gpt2-chat', 'model', null],
        ['style-a', 'model', 'gpt2-chat'],
        ['style-b', 'model', 'gpt2-chat'],
      ],
    );
    assert.equal(server.baseId, 'gpt2-chat');
    assert.ok(models.every((m) => typeof m.owned_by === 'string' && Number.isInteger(m.created)));
    assert.equal((await client.models.retrieve('style-b')).id, 'style-b');
  });

  test('completions: greedy text of the adapter, as generate() gives it, streamed and not, with usage', async () => {
    const { client } = await start();
    const prompt = 'w7 w8 w12';
    for (const adapter of ['style-a', 'style-b', 'gpt2-chat']) {
      const want = expected(adapter === 'gpt2-chat' ? null : adapter, encode(prompt), 6);
      const r = await client.completions.create({ model: adapter, prompt, max_tokens: 6, temperature: 0 });
      assert.equal(r.object, 'text_completion');
      assert.equal(r.model, adapter);
      assert.equal(r.choices.length, 1);
      assert.equal(r.choices[0]!.text, want.text, adapter);
      assert.equal(r.choices[0]!.finish_reason, want.tokens.length < 6 ? 'stop' : 'length');
      assert.deepEqual(r.usage, {
        prompt_tokens: encode(prompt).length,
        completion_tokens: want.tokens.length,
        total_tokens: encode(prompt).length + want.tokens.length,
      });
      const stream = await client.completions.create({
        model: adapter,
        prompt,
        max_tokens: 6,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      });
      const chunks = [];
      for await (const c of stream) chunks.push(c);
      const last = chunks.at(-1)!;
      assert.deepEqual(last.choices, [], 'the usage chunk has no choices');
      assert.deepEqual(last.usage, r.usage);
      assert.ok(chunks.slice(0, -1).every((c) => c.usage === null));
      assert.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), want.text);
      assert.equal(chunks.at(-2)!.choices[0]!.finish_reason, r.choices[0]!.finish_reason);
    }
    const a = expected('style-a', encode(prompt), 6).text;
    assert.notEqual(a, expected('style-b', encode(prompt), 6).text, 'the adapters differ');
    // Prompts as ids, and several prompts in one request (choice index = prompt index).
    const many = await client.completions.create({
      model: 'style-a',
      prompt: [encode(prompt), encode('w30 w8')],
      max_tokens: 6,
      temperature: 0,
    });
    assert.deepEqual(
      many.choices.map((c) => [c.index, c.text]),
      [
        [0, a],
        [1, expected('style-a', encode('w30 w8'), 6).text],
      ],
    );
  });

  test('chat.completions: the chat template, streamed and not', async () => {
    const { client } = await start();
    const messages = [{ role: 'user' as const, content: 'w7 w8' }];
    const tok = Tokenizer.fromDir(chatModel);
    const ids = tok.encode(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), {
      addSpecialTokens: false,
    }).ids;
    const want = expected('style-b', ids, 5);
    const r = await client.chat.completions.create({
      model: 'style-b',
      messages,
      max_completion_tokens: 5,
      temperature: 0,
    });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0]!.message.role, 'assistant');
    assert.equal(r.choices[0]!.message.content, want.text);
    assert.equal(r.usage!.prompt_tokens, ids.length);
    assert.equal(r.usage!.completion_tokens, want.tokens.length);
    // Content as text parts is the same conversation.
    const parts = await client.chat.completions.create({
      model: 'style-b',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'w7 w8' }] }],
      max_tokens: 5,
      temperature: 0,
    });
    assert.equal(parts.choices[0]!.message.content, want.text);
    const stream = await client.chat.completions.create({
      model: 'style-b',
      messages,
      max_tokens: 5,
      temperature: 0,
      stream: true,
    });
    let text = '';
    const roles: string[] = [];
    let finish: string | null = null;
    for await (const c of stream) {
      assert.equal(c.object, 'chat.completion.chunk');
      if (c.choices[0]!.delta.role) roles.push(c.choices[0]!.delta.role);
      text += c.choices[0]!.delta.content ?? '';
      finish = c.choices[0]!.finish_reason ?? finish;
      assert.equal(c.usage, undefined, 'no usage field without include_usage');
    }
    assert.deepEqual(roles, ['assistant']);
    assert.equal(text, want.text);
    assert.equal(finish, r.choices[0]!.finish_reason);
  });

  test('stop strings end the text before them, streamed exactly as the final text', async () => {
    const { client } = await start();
    const prompt = 'w7 w8 w12';
    const full = expected('style-a', encode(prompt), 8).text;
    const words = full.split(' ');
    assert.ok(words.length >= 4, `a long enough answer to cut: ${full}`);
    const stop = ` ${words[2]}`;
    const cut = full.slice(0, full.indexOf(stop));
    const r = await client.completions.create({ model: 'style-a', prompt, max_tokens: 8, temperature: 0, stop });
    assert.equal(r.choices[0]!.text, cut);
    assert.equal(r.choices[0]!.finish_reason, 'stop');
    assert.ok(r.usage!.completion_tokens < 8, 'the generation stopped at the stop string');
    const stream = await client.completions.create({
      model: 'style-a',
      prompt,
      max_tokens: 8,
      temperature: 0,
      stop: ['zzz', stop],
      stream: true,
    });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.text ?? '';
    assert.equal(text, cut);
  });

  test('n choices: each its own row; sampled ones reproducible by seed and different from each other', async () => {
    const { client } = await start();
    const greedy = await client.completions.create({
      model: 'style-a',
      prompt: 'w7 w8',
      max_tokens: 4,
      temperature: 0,
      n: 3,
    });
    assert.deepEqual(
      greedy.choices.map((c) => c.index),
      [0, 1, 2],
    );
    assert.ok(greedy.choices.every((c) => c.text === greedy.choices[0]!.text));
    assert.equal(greedy.choices[0]!.text, expected('style-a', encode('w7 w8'), 4).text);
    assert.equal(greedy.usage!.completion_tokens, 3 * expected('style-a', encode('w7 w8'), 4).tokens.length);
    assert.equal(greedy.usage!.prompt_tokens, 2, 'the prompt counts once');
    const sample = () =>
      client.completions.create({ model: 'style-a', prompt: 'w7 w8', max_tokens: 8, temperature: 1.5, n: 4, seed: 9 });
    const [x, y] = [await sample(), await sample()];
    assert.deepEqual(
      x.choices.map((c) => c.text),
      y.choices.map((c) => c.text),
    );
    assert.ok(new Set(x.choices.map((c) => c.text)).size > 1, `choices differ: ${x.choices.map((c) => c.text)}`);
    await assert.rejects(
      client.completions.create({ model: 'style-a', prompt: 'w7', n: 9 }),
      (e: InstanceType<typeof OpenAI.BadRequestError>) => e.status === 400 && e.param === 'n',
    );
  });

  test('errors: OpenAI shapes, 404 model_not_found, unsupported fields named', async () => {
    const { client, url } = await start();
    await assert.rejects(
      client.completions.create({ model: 'nope', prompt: 'w7' }),
      (e: InstanceType<typeof OpenAI.NotFoundError>) => {
        assert.ok(e instanceof OpenAI.NotFoundError);
        assert.equal(e.status, 404);
        assert.equal(e.code, 'model_not_found');
        assert.equal(e.type, 'invalid_request_error');
        assert.match(e.message, /The model `nope` does not exist/);
        return true;
      },
    );
    await assert.rejects(
      client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'w7' }] }),
      OpenAI.NotFoundError,
    );
    await assert.rejects(
      client.completions.create({ model: 'style-a', prompt: 'w7', logprobs: 2 }),
      (e: InstanceType<typeof OpenAI.BadRequestError>) => e.status === 400 && e.param === 'logprobs',
    );
    const raw = async (path: string, body: unknown) => {
      const r = await fetch(`${url}${path}`, { method: 'POST', body: JSON.stringify(body) });
      return { status: r.status, body: (await r.json()) as { error: Record<string, unknown> } };
    };
    for (const [body, param] of [
      [{ model: 'style-a', prompt: 5 }, 'prompt'],
      [{ model: 'style-a', prompt: 'w7', max_tokens: 0 }, 'max_tokens'],
      [{ model: 'style-a', prompt: 'w7', stop: [''] }, 'stop'],
      [{ model: 'style-a', prompt: 'w7', top_p: 3 }, 'top_p'],
      [{ model: 'style-a', prompt: 'w7 '.repeat(60), max_tokens: 10, temperature: 0 }, 'max_tokens'],
      [{ prompt: 'w7' }, 'model'],
    ] as const) {
      const r = await raw('/v1/completions', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.deepEqual(Object.keys(r.body.error).sort(), ['code', 'message', 'param', 'type']);
      assert.equal(r.body.error['param'], param, JSON.stringify(r.body));
      assert.equal(r.body.error['type'], 'invalid_request_error');
    }
    const notJson = await fetch(`${url}/v1/chat/completions`, { method: 'POST', body: '{' });
    assert.equal(notJson.status, 400);
    assert.match(String(((await notJson.json()) as { error: { message: string } }).error.message), /not JSON/);
    // vLLM's classifier route on a causal LM: refused with the reason.
    const cls = await raw('/classify', { model: 'style-a', input: 'w7' });
    assert.equal(cls.status, 400);
    assert.match(String(cls.body.error['message']), /causal LM|does not classify/);
  });

  test('a busy engine answers 503 with retry-after, which the client retries', async () => {
    // Requests wait while their adapter loads; a store slow to hand out files keeps them waiting.
    const { url } = await start({ maxQueued: 1, store: await slowStore(lm(), 300), adapters: undefined });
    const replies = await Promise.all(
      Array.from({ length: 3 }, () =>
        fetch(`${url}/v1/completions`, {
          method: 'POST',
          body: JSON.stringify({ model: 'style-a', prompt: 'w7', max_tokens: 1, temperature: 0 }),
        }),
      ),
    );
    const busy = replies.filter((r) => r.status === 503);
    assert.equal(busy.length, 2);
    assert.equal(busy[0]!.headers.get('retry-after'), '1');
    const body = (await busy[0]!.json()) as { error: { type: string; message: string } };
    assert.equal(body.error.type, 'server_error');
    assert.match(body.error.message, /busy/);
  });

  test('/metrics: requests by route and status, tokens, adapters', async () => {
    const { client, url } = await start();
    await client.completions.create({ model: 'style-a', prompt: 'w7 w8', max_tokens: 3, temperature: 0 });
    const second = await client.completions.create({ model: 'style-b', prompt: 'w7', max_tokens: 2, temperature: 0 });
    await client.completions.create({ model: 'nope', prompt: 'w7' }).catch(() => {});
    const res = await fetch(`${url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    const text = await res.text();
    const value = (series: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      assert.ok(line, `${series} in\n${text}`);
      return Number(line.slice(series.length + 1));
    };
    assert.equal(value('vera_http_requests_total{method="POST",route="/v1/completions",status="200"}'), 2);
    assert.equal(value('vera_http_requests_total{method="POST",route="/v1/completions",status="404"}'), 1);
    assert.equal(
      value('vera_http_request_duration_seconds_count{method="POST",route="/v1/completions",status="200"}'),
      2,
    );
    assert.equal(value('vera_generation_tokens_total'), 3 + second.usage!.completion_tokens);
    assert.equal(value('vera_prompt_tokens_total'), 3);
    assert.equal(value('vera_adapters_loaded'), 2);
    assert.equal(value('vera_adapter_requests_total{adapter="style-a"}'), 1);
    assert.equal(value('vera_num_requests_waiting'), 0);
    assert.equal(value('vera_num_requests_running'), 0);
    assert.match(text, /vera_lora_requests_info\{running_lora_adapters="",waiting_lora_adapters="",max_lora="64"\}/);
  });

  test('a client that disconnects cancels its generation', async () => {
    const { server, url } = await start();
    const abort = new AbortController();
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      body: JSON.stringify({ model: 'style-a', prompt: 'w7', max_tokens: 50, temperature: 0, stream: true }),
      signal: abort.signal,
    });
    const reader = res.body!.getReader();
    await reader.read(); // the first chunk: the generation is running
    abort.abort();
    for (let i = 0; i < 100 && server.engine.stats().running > 0; i++) await new Promise((r) => setTimeout(r, 10));
    const stats = server.engine.stats();
    assert.equal(stats.running, 0);
    assert.ok(stats.generatedTokens < 50, `cancelled after ${stats.generatedTokens} tokens`);
    assert.equal(expected('style-a', encode('w7'), 50).tokens.length, 50, 'uncancelled, it would run to 50 tokens');
    // The cancelled answer is counted once its handler has unwound (status 499: the client closed it).
    let metrics = '';
    for (let i = 0; i < 50 && !metrics.includes('status="499"'); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 20));
      metrics = await (await fetch(`${url}/metrics`)).text();
    }
    assert.match(metrics, /vera_http_requests_total\{method="POST",route="\/v1\/completions",status="499"\} 1/);
  });

  test('/v1/embeddings on an encoder: unit-length mean pooling of the adapter, float and base64', async () => {
    const { client, url } = await start({ model: bert, adapters: join(root, 'bert-adapters') });
    const inputs = ['w7 w8 w9', 'w20'];
    const want = (text: string, adapter: boolean) => {
      const model = loadBaseFor(bert, join(root, 'bert-adapters', 'topic')) as BertForSequenceClassification;
      if (adapter) PeftModel.fromPretrained(model, join(root, 'bert-adapters', 'topic'));
      model.eval();
      const ids = Tokenizer.fromDir(bert).encode(text).ids;
      const hidden = noGrad(() =>
        scope(() =>
          model.bert
            .forward({
              inputIds: tensor(Int32Array.from(ids), { dtype: 'i32', shape: [1, ids.length] }),
              tokenTypeIds: tensor(new Int32Array(ids.length), { dtype: 'i32', shape: [1, ids.length] }),
            })
            .toNumbers(),
        ),
      );
      const c = hidden.length / ids.length;
      const mean = Array.from(
        { length: c },
        (_, j) => ids.reduce((a, _t, i) => a + hidden[i * c + j]!, 0) / ids.length,
      );
      const norm = Math.hypot(...mean);
      return mean.map((v) => v / norm);
    };
    const near = (got: ArrayLike<number>, exp: number[], what: string) => {
      assert.equal(got.length, exp.length, what);
      const worst = Math.max(...exp.map((v, i) => Math.abs(v - got[i]!)));
      assert.ok(worst < 1e-5, `${what}: off by ${worst}`);
    };
    // The client asks for base64 unless told otherwise, and decodes it as float32.
    const b64 = await client.embeddings.create({ model: 'topic', input: inputs });
    assert.equal(b64.object, 'list');
    assert.equal(b64.data.length, 2);
    const wantA = want(inputs[0]!, true);
    near(b64.data[0]!.embedding, wantA, 'base64, adapter');
    near(b64.data[1]!.embedding, want(inputs[1]!, true), 'base64, adapter, second');
    assert.equal(b64.usage.prompt_tokens, 4);
    const float = await client.embeddings.create({ model: 'topic', input: inputs[0]!, encoding_format: 'float' });
    near(float.data[0]!.embedding, wantA, 'float');
    const base = await client.embeddings.create({ model: 'bert-seqcls', input: inputs[0]!, encoding_format: 'float' });
    near(base.data[0]!.embedding, want(inputs[0]!, false), 'base');
    assert.ok(Math.abs(base.data[0]!.embedding[0]! - wantA[0]!) > 1e-4, 'the adapter changes the embedding');
    const ids = await client.embeddings.create({ model: 'topic', input: [[7, 8, 9]], encoding_format: 'float' });
    near(ids.data[0]!.embedding, wantA, 'token ids as input');
    // The raw base64 is little-endian float32.
    const raw = (await (
      await fetch(`${url}/v1/embeddings`, {
        method: 'POST',
        body: JSON.stringify({ model: 'topic', input: inputs[0], encoding_format: 'base64' }),
      })
    ).json()) as { data: { embedding: string }[] };
    const bytes = Buffer.from(raw.data[0]!.embedding, 'base64');
    near(
      Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4)),
      wantA,
      'raw base64',
    );
  });

  test("POST /classify in vLLM's shape, the same probabilities as /v1/classify", async () => {
    const { url } = await start({ model: bert, adapters: join(root, 'bert-adapters'), labelNames: ['a', 'b', 'c'] });
    const post = async (path: string, body: unknown) => {
      const r = await fetch(`${url}${path}`, { method: 'POST', body: JSON.stringify(body) });
      return { status: r.status, body: (await r.json()) as Record<string, unknown> };
    };
    const r = await post('/classify', { model: 'topic', input: ['w7 w8 w9', 'w20'] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(Object.keys(r.body).sort(), ['created', 'data', 'id', 'model', 'object', 'usage']);
    assert.equal(r.body['object'], 'list');
    assert.match(String(r.body['id']), /^classify-/);
    const data = r.body['data'] as { index: number; label: string; probs: number[]; num_classes: number }[];
    assert.deepEqual(
      data.map((d) => d.index),
      [0, 1],
    );
    for (const [i, text] of ['w7 w8 w9', 'w20'].entries()) {
      const mine = (await post('/v1/classify', { adapter: 'topic', text })).body as {
        labels: { label: string; id: number; score: number }[];
      };
      const byId = [...mine.labels].sort((a, b) => a.id - b.id).map((l) => l.score);
      assert.equal(data[i]!.num_classes, byId.length);
      assert.ok(Math.max(...byId.map((p, j) => Math.abs(p - data[i]!.probs[j]!))) < 1e-6, 'batched and alone agree');
      assert.equal(data[i]!.label, mine.labels[0]!.label);
    }
    assert.deepEqual(r.body['usage'], {
      prompt_tokens: 4,
      total_tokens: 4,
      completion_tokens: 0,
      prompt_tokens_details: null,
    });
    const missing = await post('/classify', { model: 'nope', input: 'w7' });
    assert.equal(missing.status, 404);
    assert.equal((missing.body['error'] as Record<string, unknown>)['code'], 'model_not_found');
    const badInput = await post('/classify', { model: 'topic', input: [] });
    assert.equal(badInput.status, 400);
    assert.equal((badInput.body['error'] as Record<string, unknown>)['param'], 'input');
  });
});
