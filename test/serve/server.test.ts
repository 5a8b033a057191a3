// `vera serve`'s server over real HTTP on a free port: classification adapters trained by vera train on a
// causal-LM base and language-model adapters, each request answered as that adapter alone answers it
// (also when requests of several adapters share a batch), batching, unloading beyond maxLoaded, and
// errors with their status codes.

import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { getPeftModel, veraConfig } from '../../src/adapters/index.js';
import { PeftModel } from '../../src/adapters/peft-model.js';
import { noGrad } from '../../src/autograd/graph.js';
import { generate } from '../../src/generate/generate.js';
import { decodeImage, imageToTensor, loadImageProcessorConfig } from '../../src/io/image.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { loadModel } from '../../src/models/auto.js';
import { AdapterServer } from '../../src/serve/server.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { scope } from '../../src/tensor/scope.js';
import { loadBaseFor, loadTrained } from '../../src/adapters/load.js';
import { train } from '../../src/train/trainer.js';
import { VIT_PREPROCESSOR, caseDir } from '../models/fixtures.js';
import { slowStore } from './helpers.js';
import { fixtureModel, keywordCsv, quietSink, runConfig, scratch } from '../train/helpers.js';

const ADAPTER_FIXTURES = fileURLToPath(new URL('../../../test/parity/fixtures/adapters/', import.meta.url));
const IMAGE_FIXTURES = fileURLToPath(new URL('../../../test/parity/fixtures/images/', import.meta.url));

const { dir: root, cleanup } = scratch('serve');
let gpt2: string;
const servers: AdapterServer[] = [];
after(async () => {
  for (const s of servers) await s.close();
  cleanup();
});

const ports = new Map<AdapterServer, number>();
const baseUrl = (server: AdapterServer) => `http://127.0.0.1:${ports.get(server)}`;

async function start(opts: Omit<Parameters<typeof AdapterServer.open>[0], 'model'> & { model?: string }) {
  const server = await AdapterServer.open({ model: gpt2, ...opts });
  servers.push(server);
  const port = await server.listen(0);
  ports.set(server, port);
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      method,
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  return { server, call };
}

/** Logits of one text through `adapter` alone, loaded as vera eval loads it. */
function alone(adapter: string, text: string): number[] {
  const { model } = loadTrained(gpt2, adapter, { padTokenId: 0 });
  const ids = Tokenizer.fromDir(gpt2).encode(text).ids;
  return noGrad(() =>
    scope(() => [
      ...(model
        .forward({ inputIds: tensor(Int32Array.from(ids), { dtype: 'i32', shape: [1, ids.length] }) })
        .toArray() as Float32Array),
    ]),
  );
}

const close = (got: unknown, want: number[], what: string) => {
  const g = got as number[];
  assert.equal(g.length, want.length, what);
  assert.ok(Math.max(...g.map((v, i) => Math.abs(v - want[i]!))) <= 1e-5, `${what}: ${g} vs ${want}`);
};

before(async () => {
  gpt2 = fixtureModel(root, 'gpt2-lm');
  // Classification adapters: VeRA (same seed, so the same projections; different data) and one LoRA.
  const cls = join(root, 'classifiers');
  for (const [name, method, seed] of [
    ['keywords', 'vera', 7],
    ['keywords-2', 'vera', 11],
    ['lora', 'lora', 7],
  ] as const) {
    const out = join(root, 'runs', name);
    const config = runConfig({
      model: gpt2,
      train_file: keywordCsv(join(root, `${name}.csv`), 64, seed),
      method,
      r: 8,
      lr: 3e-2,
      max_steps: 8,
      batch_size: 8,
      output_dir: out,
    });
    assert.equal((await train({ config, sink: quietSink() })).status, 'completed');
    cpSync(join(out, 'adapter'), join(cls, name), { recursive: true });
  }
  // Language-model adapters with seeded λ values (an identity adapter would test nothing).
  const lm = join(root, 'lm');
  for (const [name, seed] of [
    ['style-a', 1],
    ['style-b', 2],
  ] as const) {
    const peft = getPeftModel(loadModel(gpt2), veraConfig({ r: 8, target_modules: ['c_attn', 'c_fc'] }));
    const g = new Generator(seed);
    noGrad(() => {
      for (const [, t] of peft.trainableParameters()) {
        const v = tensor(g.uniform(t.numel, -1, 1), { shape: t.shape });
        t.backend.copy(t.view('λ'), v.view('λ'));
      }
    });
    mkdirSync(join(lm, name), { recursive: true });
    peft.savePretrained(join(lm, name));
  }
});

describe('vera serve', () => {
  test('classification: each request as its adapter alone gives it, batched across adapters', async () => {
    const { server, call } = await start({
      adapters: join(root, 'classifiers'),
      labelNames: ['neg', 'pos'],
      batchWindowMs: 20,
    });
    assert.equal(server.task, 'sequence-classification');
    const listed = (await call('GET', '/v1/adapters')).body;
    assert.equal(listed['object'], 'list');
    assert.deepEqual(
      (listed['data'] as { id: string; object: string; version: number; owner: null; loaded: boolean }[]).map((a) => [
        a.id,
        a.object,
        a.version,
        a.owner,
        a.loaded,
      ]),
      [
        ['keywords', 'adapter', 1, null, false],
        ['keywords-2', 'adapter', 1, null, false],
        ['lora', 'adapter', 1, null, false],
      ],
    );
    const texts = ['w7 w7 w12', 'w8 w30 w8 w8', 'w7 w8 w9'];
    const requests = [
      { adapter: 'keywords', text: texts[0] },
      { adapter: 'keywords-2', text: texts[1] },
      { text: texts[2] },
      { adapter: 'keywords', text: texts[1] },
    ];
    const replies = await Promise.all(requests.map((r) => call('POST', '/v1/classify', r)));
    const base = loadBaseFor(gpt2, join(root, 'classifiers', 'keywords'), { padTokenId: 0 });
    replies.forEach((reply, i) => {
      const r = requests[i]!;
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      assert.equal(reply.body['adapter'], r.adapter ?? '__base__');
      const want =
        r.adapter === undefined
          ? (() => {
              const ids = Tokenizer.fromDir(gpt2).encode(r.text!).ids;
              return noGrad(() =>
                scope(() => [
                  ...(base
                    .forward({ inputIds: tensor(Int32Array.from(ids), { dtype: 'i32', shape: [1, ids.length] }) })
                    .toArray() as Float32Array),
                ]),
              );
            })()
          : alone(join(root, 'classifiers', r.adapter), r.text!);
      close(reply.body['logits'], want, `request ${i}`);
      const labels = reply.body['labels'] as { label: string; score: number }[];
      assert.deepEqual(labels.map((l) => l.label).sort(), ['neg', 'pos']);
      assert.ok(labels[0]!.score >= labels[1]!.score);
    });
    const health = (await call('GET', '/health')).body;
    assert.equal(health['requests'], 4);
    assert.equal(health['batches'], 1, 'requests that arrive together share one batch');
    // Least recently used first: keywords is used again.
    assert.equal((await call('POST', '/v1/classify', { adapter: 'keywords', text: 'w7' })).status, 200);
    assert.deepEqual((await server.adapters()).loaded, ['keywords-2', 'keywords']);
    const loaded = (await call('GET', '/v1/adapters')).body['data'] as { id: string; loaded: boolean }[];
    assert.deepEqual(
      loaded.map((a) => [a.id, a.loaded]),
      [
        ['keywords', true],
        ['keywords-2', true],
        ['lora', false],
      ],
    );

    // A LoRA adapter cannot join a model of VeRA adapters: its requests fail, the others do not.
    const [bad, good] = await Promise.all([
      call('POST', '/v1/classify', { adapter: 'lora', text: 'w7' }),
      call('POST', '/v1/classify', { adapter: 'keywords', text: 'w7' }),
    ]);
    assert.equal(bad.status, 422);
    assert.match(String(bad.body['error']), /adapter "lora": .*LORA.*VERA|peft_type/);
    assert.equal(good.status, 200);
  });

  test('generation: each prompt continued by its own adapter, as generate() with that adapter alone', async () => {
    const { server, call } = await start({ adapters: join(root, 'lm'), batchWindowMs: 20 });
    assert.equal(server.task, 'causal-lm');
    const requests = [
      { adapter: 'style-a', prompt: 'w7 w8 w12', max_new_tokens: 5 },
      { adapter: 'style-b', prompt: 'w30 w8', max_new_tokens: 4 },
      { prompt: 'w9 w10 w11 w12', max_new_tokens: 3 },
    ];
    const replies = await Promise.all(requests.map((r) => call('POST', '/v1/generate', r)));
    const tok = Tokenizer.fromDir(gpt2);
    for (const [i, r] of requests.entries()) {
      const reply = replies[i]!;
      assert.equal(reply.status, 200, JSON.stringify(reply.body));
      const model = loadModel(gpt2);
      if (r.adapter) PeftModel.fromPretrained(model, join(root, 'lm', r.adapter));
      const want = generate(model, [tok.encode(r.prompt).ids], { maxNewTokens: r.max_new_tokens })[0]!;
      assert.deepEqual(reply.body['tokens'], want, `request ${i}`);
      assert.equal(reply.body['text'], tok.decode(want, { skipSpecialTokens: true, cleanUpTokenizationSpaces: false }));
      assert.ok(['stop', 'length'].includes(String(reply.body['finish_reason'])));
    }
    assert.notDeepEqual(replies[0]!.body['tokens'], replies[1]!.body['tokens']);
    const wrong = await call('POST', '/v1/classify', { text: 'w7' });
    assert.equal(wrong.status, 400);
    assert.match(String(wrong.body['error']), /causal LM\): use \/v1\/generate/);
    const tooMany = await call('POST', '/v1/generate', { prompt: 'w7', max_new_tokens: 100000 });
    assert.equal(tooMany.status, 400);
    assert.match(String(tooMany.body['error']), /max_new_tokens must be an integer from 1 to 512/);
  });

  test('"stream": true sends each token as a server-sent event, then the whole answer and [DONE]', async () => {
    const { server, call } = await start({ adapters: join(root, 'lm'), batchWindowMs: 20 });
    const requests = [
      { adapter: 'style-a', prompt: 'w7 w8 w12', max_new_tokens: 5 },
      { adapter: 'style-b', prompt: 'w30 w8', max_new_tokens: 4 },
    ];
    const plain = await Promise.all(requests.map((r) => call('POST', '/v1/generate', r)));
    const streamed = await Promise.all(
      requests.map(async (r) => {
        const res = await fetch(`${baseUrl(server)}/v1/generate`, {
          method: 'POST',
          body: JSON.stringify({ ...r, stream: true }),
        });
        assert.equal(res.headers.get('content-type'), 'text/event-stream');
        return (await res.text())
          .split('\n\n')
          .filter(Boolean)
          .map((e) => e.replace(/^data: /, ''));
      }),
    );
    streamed.forEach((events, i) => {
      assert.equal(events.at(-1), '[DONE]');
      const final = JSON.parse(events.at(-2)!) as Record<string, unknown>;
      assert.deepEqual(final, plain[i]!.body, 'the last event is the non-streamed answer');
      const pieces = events.slice(0, -2).map((e) => JSON.parse(e) as { token: number | null; text: string });
      assert.deepEqual(
        pieces.map((p) => p.token).filter((t) => t !== null),
        final['tokens'],
      );
      assert.equal(pieces.map((p) => p.text).join(''), final['text']);
    });
    const bad = await fetch(`${baseUrl(server)}/v1/generate`, {
      method: 'POST',
      body: JSON.stringify({ prompt: 'w7', stream: 'yes' }),
    });
    assert.equal(bad.status, 400);
    assert.match(((await bad.json()) as { error: string }).error, /"stream" must be true or false/);
  });

  test('image classification (ViT): a base64 PNG per request, each on its own adapter', async () => {
    const vit = join(root, 'vit');
    cpSync(caseDir('vit-imgcls'), vit, { recursive: true });
    writeFileSync(join(vit, 'preprocessor_config.json'), VIT_PREPROCESSOR);
    const adapters = join(root, 'vit-adapters');
    cpSync(join(ADAPTER_FIXTURES, 'vit-vera-head'), join(adapters, 'head'), { recursive: true });
    const { server, call } = await start({ model: vit, adapters, batchWindowMs: 20 });
    assert.equal(server.task, 'image-classification');
    assert.equal(server.tokenizer, null);
    const png = readFileSync(join(IMAGE_FIXTURES, 'rgb_37x23.png'));
    const [adapted, plain] = await Promise.all(
      [{ adapter: 'head' }, {}].map((r) => call('POST', '/v1/classify', { ...r, image: png.toString('base64') })),
    );
    const expected = (adapter?: string) => {
      const model = loadModel(vit);
      if (adapter) PeftModel.fromPretrained(model, adapter);
      const pixels = imageToTensor(decodeImage(new Uint8Array(png)), loadImageProcessorConfig(vit));
      return noGrad(() => model.forward({ pixelValues: pixels }).toNumbers());
    };
    close(adapted!.body['logits'], expected(join(adapters, 'head')), 'adapted');
    close(plain!.body['logits'], expected(), 'base');
    assert.equal((await call('GET', '/health')).body['batches'], 1);
    const bad = [
      [{ text: 'w7' }, /image classifier .*send "image", not "text"/],
      [{ image: 'not base64!' }, /"image" must be a base64 string/],
      [{ image: Buffer.from('GIF89a').toString('base64') }, /the request image/],
      [{ image: png.toString('base64'), text: 'x' }, /exactly one of "text" and "image"/],
    ] as const;
    for (const [body, error] of bad) {
      const r = await call('POST', '/v1/classify', body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(String(r.body['error']), error);
    }
  });

  test('a bf16-stored base serves the same adapters', async () => {
    const { server, call } = await start({ adapters: join(root, 'lm'), dtype: 'bf16', engine: 'local' });
    assert.equal(server.model.parameters().find((p) => p.rank === 2)!.dtype, 'bf16');
    const r = await call('POST', '/v1/generate', { adapter: 'style-a', prompt: 'w7 w8', max_new_tokens: 3 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((r.body['tokens'] as number[]).length, 3);
  });

  test('an adapter copied into the folder while serving is found', async () => {
    const folder = join(root, 'lm-live');
    cpSync(join(root, 'lm', 'style-a'), join(folder, 'style-a'), { recursive: true });
    const { call, server } = await start({ adapters: folder });
    assert.deepEqual((await server.adapters()).available, ['style-a']);
    cpSync(join(root, 'lm', 'style-b'), join(folder, 'late'), { recursive: true });
    const r = await call('POST', '/v1/generate', { adapter: 'late', prompt: 'w7', max_new_tokens: 2 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(await server.adapters(), { available: ['late', 'style-a'], loaded: ['late'] });
  });

  test('an adapter changed on disk is reloaded on its next request', async () => {
    const folder = join(root, 'lm-changing');
    cpSync(join(root, 'lm', 'style-a'), join(folder, 'mine'), { recursive: true });
    const { call } = await start({ adapters: folder });
    const ask = async () =>
      (await call('POST', '/v1/generate', { adapter: 'mine', prompt: 'w7 w8', max_new_tokens: 6 })).body['tokens'];
    const before = await ask();
    // Retrained: style-b's files replace style-a's (a later modification time, as a new file has).
    cpSync(join(root, 'lm', 'style-b'), join(folder, 'mine'), { recursive: true, force: true });
    const later = new Date(Date.now() + 5000);
    for (const f of ['adapter_config.json', 'adapter_model.safetensors'])
      utimesSync(join(folder, 'mine', f), later, later);
    const after = await ask();
    cpSync(join(root, 'lm', 'style-b'), join(root, 'lm-b-only', 'b'), { recursive: true });
    const want = (await start({ adapters: join(root, 'lm-b-only') })).call;
    const fromB = (await want('POST', '/v1/generate', { adapter: 'b', prompt: 'w7 w8', max_new_tokens: 6 })).body[
      'tokens'
    ];
    assert.deepEqual(after, fromB);
    assert.notDeepEqual(after, before);
    assert.deepEqual(await ask(), after, 'unchanged files are not reloaded');
  });

  test('"messages" are rendered by the chat template, as vera generate --chat renders them', async () => {
    const chat = join(root, 'gpt2-chat');
    cpSync(gpt2, chat, { recursive: true });
    const config = JSON.parse(readFileSync(join(chat, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    config['chat_template'] =
      "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}w5{% endif %}";
    writeFileSync(join(chat, 'tokenizer_config.json'), JSON.stringify(config));
    const { call } = await start({ model: chat, adapters: join(root, 'lm') });
    const messages = [{ role: 'user', content: 'w7 w8' }];
    const r = await call('POST', '/v1/generate', { adapter: 'style-a', messages, max_new_tokens: 4 });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const tok = Tokenizer.fromDir(chat);
    const ids = tok.encode(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), {
      addSpecialTokens: false,
    }).ids;
    const model = loadModel(chat);
    PeftModel.fromPretrained(model, join(root, 'lm', 'style-a'));
    assert.deepEqual(r.body['tokens'], generate(model, [ids], { maxNewTokens: 4 })[0]);
    for (const [body, error] of [
      [{ messages, prompt: 'x' }, /exactly one of "prompt" and "messages"/],
      [{ messages: [{ role: 'user' }] }, /"messages" must be a non-empty list/],
    ] as const) {
      const bad = await call('POST', '/v1/generate', body);
      assert.equal(bad.status, 400);
      assert.match(String(bad.body['error']), error);
    }
    // A tokenizer without a chat template: the request is refused, saying so.
    const plain = await start({ adapters: join(root, 'lm') });
    const noTemplate = await plain.call('POST', '/v1/generate', { messages });
    assert.equal(noTemplate.status, 400);
    assert.match(String(noTemplate.body['error']), /^"messages": .*template/i);
  });

  test('--cors: the origin header on answers, and preflight requests', async () => {
    const { server } = await start({ adapters: join(root, 'lm'), cors: 'https://app.example' });
    const pre = await fetch(`${baseUrl(server)}/v1/generate`, { method: 'OPTIONS' });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/);
    const r = await fetch(`${baseUrl(server)}/health`);
    assert.equal(r.headers.get('access-control-allow-origin'), 'https://app.example');
    const plain = await start({ adapters: join(root, 'lm') });
    assert.equal((await fetch(`${baseUrl(plain.server)}/health`)).headers.get('access-control-allow-origin'), null);
  });

  test('beyond maxQueued waiting requests, new ones get 503', async () => {
    // Requests wait while their adapter loads; a store slow to hand out files keeps them waiting.
    const { call } = await start({ store: await slowStore(join(root, 'lm'), 300), maxQueued: 2 });
    const replies = await Promise.all(
      Array.from({ length: 4 }, () =>
        call('POST', '/v1/generate', { adapter: 'style-a', prompt: 'w7', max_new_tokens: 1 }),
      ),
    );
    assert.deepEqual(replies.map((r) => r.status).sort(), [200, 200, 503, 503]);
    assert.match(String(replies.find((r) => r.status === 503)!.body['error']), /busy \(2 requests waiting\)/);
    assert.equal((await call('GET', '/health')).body['queued'], 0);
  });

  test('beyond maxLoaded the least recently used adapter is unloaded', async () => {
    const { call, server } = await start({ adapters: join(root, 'lm'), maxLoaded: 1 });
    for (const adapter of ['style-a', 'style-b', 'style-a'])
      assert.equal((await call('POST', '/v1/generate', { adapter, prompt: 'w7', max_new_tokens: 1 })).status, 200);
    assert.deepEqual((await server.adapters()).loaded, ['style-a']);
  });

  test('bad requests get a status and an error naming the field', async () => {
    const { call } = await start({ adapters: join(root, 'lm') });
    const cases: [string, string, unknown, number, RegExp][] = [
      [
        'POST',
        '/v1/generate',
        { adapter: 'nope', prompt: 'x' },
        404,
        /no adapter "nope" in .* \(available: style-a, style-b\)/,
      ],
      ['POST', '/v1/generate', { prompt: 5 }, 400, /"prompt" must be a string, got 5/],
      ['POST', '/v1/generate', { prompt: '' }, 400, /the prompt has no tokens to continue/],
      [
        'POST',
        '/v1/generate',
        { prompt: 'w7 '.repeat(60), max_new_tokens: 10 },
        400,
        /the prompt's \d+ tokens and max_new_tokens 10 exceed the model's 64 positions/,
      ],
      ['POST', '/v1/generate', 'not json', 400, /the body is not JSON/],
      ['POST', '/v1/generate', [1], 400, /must be a JSON object/],
      ['POST', '/v1/generate', { prompt: 'x', temperature: 'hot' }, 400, /"temperature" must be a number/],
      ['POST', '/v1/generate', { prompt: 'x', temperature: 1, top_p: 2 }, 400, /top/i],
      ['GET', '/v1/generate', undefined, 405, /GET is not allowed on \/v1\/generate/],
      ['GET', '/nope', undefined, 404, /no route GET \/nope/],
      ['POST', '/v1/generate', `{"prompt": "${'x'.repeat(1 << 20)}"}`, 413, /the request body is over 1048576 bytes/],
    ];
    for (const [method, path, body, status, error] of cases) {
      const r = await call(method, path, body);
      assert.equal(r.status, status, `${method} ${path} ${JSON.stringify(body)}`);
      assert.match(String(r.body['error']), error);
    }
    await assert.rejects(
      AdapterServer.open({ model: gpt2, adapters: join(root, 'missing') }),
      /is not a folder of adapters/,
    );
  });
});
