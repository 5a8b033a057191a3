// The training loop in-process on the tiny fixtures: VeRA learns, the head/LoRA/full/from-scratch/ViT/BERT
// paths train what they should, accumulation equals a larger batch, divergence stops cleanly, early
// stopping works, and a run stopped and resumed ends byte-identical to an uninterrupted one.

import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SafetensorsReader } from '../../src/io/safetensors.js';
import type { TrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import {
  FIXTURES,
  fixtureModel,
  idxImages,
  keywordCsv,
  lmText,
  pairCsv,
  quietSink,
  readJsonLines,
  regressionCsv,
  runConfig,
  scratch,
} from './helpers.js';

let root: string;
let cleanup: () => void;
let gpt2: string;
let data: string;
before(() => {
  ({ dir: root, cleanup } = scratch('trainer'));
  gpt2 = fixtureModel(root, 'gpt2-lm');
  data = keywordCsv(join(root, 'keywords.csv'));
});
after(() => cleanup());

/** The training losses a run logged, step by step. */
const trainLosses = (out: string) =>
  readJsonLines(join(out, 'metrics.jsonl'))
    .filter((x) => x['type'] === 'train')
    .map((x) => x['loss'] as number);

/** Every tensor of a safetensors file as numbers. */
function tensors(file: string): Map<string, number[]> {
  const r = SafetensorsReader.open(file);
  try {
    return new Map(
      r.names().map((n) => {
        const t = r.tensor(n, { dtype: 'f32' });
        const v = t.toNumbers();
        t.dispose();
        return [n, v];
      }),
    );
  } finally {
    r.close();
  }
}

describe('train', () => {
  test('VeRA learns a keyword task: the loss falls and validation accuracy is far above chance', async () => {
    const out = join(root, 'vera');
    const r = await train({
      config: runConfig({
        model: gpt2,
        train_file: data,
        output_dir: out,
        method: 'vera',
        r: 32,
        lr: 5e-2,
        head_lr: 1e-2,
        epochs: 3,
        validation_fraction: 0.1,
        eval_steps: 23,
        logging_steps: 5,
      }),
      sink: quietSink(),
    });
    assert.equal(r.status, 'completed', r.message);
    const steps = readJsonLines(join(out, 'metrics.jsonl')).filter((x) => x['type'] === 'train');
    const first = steps[0]!['loss'] as number;
    const last = steps.at(-1)!['loss'] as number;
    assert.ok(last < 0.6 * first, `loss ${first} → ${last}`);
    assert.ok(r.best && r.best.metric === 'accuracy' && r.best.value >= 0.8, JSON.stringify(r.best));
    // PEFT's files, the best adapter, the plot.
    for (const f of ['adapter/adapter_config.json', 'adapter/adapter_model.safetensors', 'best/eval_results.json'])
      assert.ok(existsSync(join(out, f)), f);
    const cfg = JSON.parse(readFileSync(join(out, 'adapter', 'adapter_config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.equal(cfg['peft_type'], 'VERA');
    assert.equal(cfg['task_type'], 'SEQ_CLS');
    assert.ok(tensors(join(out, 'adapter', 'adapter_model.safetensors')).has('base_model.model.score.weight'));
    const svg = readFileSync(join(out, 'plot.svg'), 'utf8');
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"[\s\S]*<\/svg>\n$/);
    assert.match(svg, /<polyline points="[\d., ]+"/);
    assert.match(svg, /validation accuracy/);
    const opened = (svg.match(/<(svg|g)[ >]/g) ?? []).length;
    assert.equal(opened, (svg.match(/<\/(svg|g)>/g) ?? []).length, 'balanced <svg>/<g> tags');
    for (const rec of readJsonLines(join(out, 'metrics.jsonl')))
      assert.ok(['train', 'eval', 'event'].includes(rec['type'] as string) && typeof rec['step'] === 'number');
  });

  test('head trains only the classification head; full trains every weight', async () => {
    const base = tensors(join(gpt2, 'model.safetensors'));
    for (const method of ['head', 'full'] as const) {
      const out = join(root, method);
      const r = await train({
        config: runConfig({ model: gpt2, train_file: data, output_dir: out, method, lr: 1e-2, max_steps: 6 }),
        sink: quietSink(),
      });
      assert.equal(r.status, 'completed', r.message);
      assert.equal(r.output, join(out, 'model'));
      const saved = tensors(join(out, 'model', 'model.safetensors'));
      const config = JSON.parse(readFileSync(join(out, 'model', 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(config['architectures'], ['GPT2ForSequenceClassification']);
      assert.deepEqual(config['id2label'], { '0': 'neg', '1': 'pos' });
      assert.ok(existsSync(join(out, 'model', 'tokenizer.json')), 'the tokenizer is saved with the model');
      const changed = [...saved].filter(([k, v]) => base.has(k) && v.some((x, i) => x !== base.get(k)![i]));
      if (method === 'head') assert.deepEqual(changed, [], 'the body is frozen');
      else assert.ok(changed.length > 20, `${changed.length} tensors changed`);
      assert.ok(saved.has('score.weight'));
    }
  });

  test('--dtype bf16: VeRA trains on a bf16 base (bf16 GEMMs) like on the f32 one; full fine-tuning refuses it', async () => {
    const run = async (dtype: 'f32' | 'bf16') => {
      const out = join(root, `dtype-${dtype}`);
      const r = await train({
        config: runConfig({
          model: gpt2,
          train_file: data,
          output_dir: out,
          method: 'vera',
          r: 16,
          lr: 3e-2,
          dtype,
          max_steps: 8,
        }),
        sink: quietSink(),
      });
      assert.equal(r.status, 'completed', r.message);
      const losses = trainLosses(out);
      return { losses, adapter: tensors(join(out, 'adapter', 'adapter_model.safetensors')) };
    };
    const [f32, bf16] = [await run('f32'), await run('bf16')];
    assert.equal(bf16.losses.length, 8);
    // The fixture's weights are not bf16 values, so the runs differ by bf16 rounding only.
    f32.losses.forEach((l, i) =>
      assert.ok(Math.abs(l - bf16.losses[i]!) < 2e-2, `step ${i}: ${l} vs ${bf16.losses[i]}`),
    );
    assert.deepEqual([...bf16.adapter.keys()], [...f32.adapter.keys()]);
    assert.notDeepEqual(bf16.adapter, f32.adapter);
    assert.throws(
      () => runConfig({ model: gpt2, train_file: data, output_dir: join(root, 'x'), method: 'full', dtype: 'bf16' }),
      /--dtype bf16 keeps the base frozen in bf16: it is for --method vera, lora or head, not full/,
    );
    // head trains only the (f32) classification head, so a bf16 base is fine.
    runConfig({ model: gpt2, train_file: data, output_dir: join(root, 'x'), method: 'head', dtype: 'bf16' });
  });

  test("VeRA's projection key is PEFT's 0 whatever the seed, unless given", async () => {
    const key = async (extra: Partial<TrainConfig>) => {
      const out = join(root, `key-${JSON.stringify(extra).replace(/\W/g, '')}`);
      const config = runConfig({
        model: gpt2,
        train_file: data,
        output_dir: out,
        method: 'vera',
        r: 8,
        max_steps: 1,
        ...extra,
      });
      assert.equal((await train({ config, sink: quietSink() })).status, 'completed');
      return (JSON.parse(readFileSync(join(out, 'adapter', 'adapter_config.json'), 'utf8')) as Record<string, unknown>)[
        'projection_prng_key'
      ];
    };
    assert.equal(await key({ seed: 3 }), 0);
    assert.equal(await key({ seed: 3, projection_prng_key: 7 }), 7);
  });

  test('LoRA on a causal LM and regression with a new one-output head run', async () => {
    const lm = await train({
      config: runConfig({
        model: gpt2,
        train_file: lmText(join(root, 'lm.txt')),
        output_dir: join(root, 'lora-lm'),
        method: 'lora',
        lr: 1e-2,
        block_size: 16,
        max_steps: 8,
        validation_fraction: 0.2,
        eval_steps: 4,
      }),
      sink: quietSink(),
    });
    assert.equal(lm.status, 'completed', lm.message);
    assert.ok(lm.lastEval && Number.isFinite(lm.lastEval['eval_perplexity']), JSON.stringify(lm.lastEval));
    assert.equal(lm.best?.metric, 'perplexity');
    const cfg = JSON.parse(readFileSync(join(root, 'lora-lm', 'adapter', 'adapter_config.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.equal(cfg['peft_type'], 'LORA');
    assert.equal(cfg['task_type'], 'CAUSAL_LM');

    const reg = await train({
      config: runConfig({
        model: gpt2,
        task: 'regression',
        train_file: regressionCsv(join(root, 'reg.csv')),
        label_column: 'score',
        output_dir: join(root, 'reg'),
        method: 'vera',
        r: 8,
        lr: 1e-2,
        max_steps: 6,
        validation_fraction: 0.25,
      }),
      sink: quietSink(),
    });
    assert.equal(reg.status, 'completed', reg.message);
    assert.equal(reg.best?.metric, 'pearson');
    const head = tensors(join(root, 'reg', 'adapter', 'adapter_model.safetensors')).get(
      'base_model.model.score.weight',
    );
    assert.equal(head?.length, 32, 'a [1, 32] regression head');
  });

  test('full from scratch pretrains a causal LM from a config.json alone', async () => {
    const dir = join(root, 'scratch-model');
    mkdirSync(dir);
    copyFileSync(join(gpt2, 'config.json'), join(dir, 'config.json'));
    const out = join(root, 'scratch');
    const r = await train({
      config: runConfig({
        model: dir,
        tokenizer: gpt2,
        from_scratch: true,
        method: 'full',
        train_file: lmText(join(root, 'lm.txt')),
        output_dir: out,
        lr: 1e-2,
        block_size: 16,
        batch_size: 8,
        max_steps: 30,
      }),
      sink: quietSink(),
    });
    assert.equal(r.status, 'completed', r.message);
    const losses = trainLosses(out);
    assert.ok(losses.at(-1)! < 0.5 * losses[0]!, `loss ${losses[0]} → ${losses.at(-1)}`);
    const saved = JSON.parse(readFileSync(join(out, 'model', 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(saved['architectures'], ['GPT2LMHeadModel']);
  });

  test('VeRA on ViT (IDX images) and on BERT sentence pairs', async () => {
    const vit = join(root, 'vit');
    mkdirSync(vit);
    for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(FIXTURES, 'vit-imgcls', f), join(vit, f));
    const { images, labels } = idxImages(root);
    const img = await train({
      config: runConfig({
        model: vit,
        train_file: images,
        train_labels_file: labels,
        output_dir: join(root, 'vit-run'),
        method: 'vera',
        r: 8,
        lr: 2e-2,
        max_steps: 6,
        validation_fraction: 0.25,
      }),
      sink: quietSink(),
    });
    assert.equal(img.status, 'completed', img.message);
    assert.equal(img.best?.metric, 'accuracy');
    const saved = tensors(join(root, 'vit-run', 'adapter', 'adapter_model.safetensors'));
    assert.equal(saved.get('base_model.model.classifier.weight')?.length, 2 * 32, 'a new 2-class head');

    const bert = await train({
      config: runConfig({
        model: fixtureModel(root, 'bert-seqcls'),
        train_file: pairCsv(join(root, 'pairs.csv')),
        text_column: 'a',
        pair_column: 'b',
        output_dir: join(root, 'bert-run'),
        method: 'vera',
        r: 8,
        lr: 2e-2,
        max_steps: 4,
      }),
      sink: quietSink(),
    });
    assert.equal(bert.status, 'completed', bert.message);
  });

  test('gradient accumulation: 2 micro-batches of 4 give the update of one batch of 8', async () => {
    const run = async (batch: number, accum: number) => {
      const out = join(root, `accum-${batch}x${accum}`);
      const r = await train({
        config: runConfig({
          model: gpt2,
          train_file: data,
          output_dir: out,
          method: 'vera',
          r: 16,
          lr: 1e-2,
          batch_size: batch,
          gradient_accumulation_steps: accum,
          max_steps: 5,
          max_grad_norm: 1,
        }),
        sink: quietSink(),
      });
      assert.equal(r.status, 'completed', r.message);
      return tensors(join(out, 'adapter', 'adapter_model.safetensors'));
    };
    const big = await run(8, 1);
    const small = await run(4, 2);
    const base = await run(4, 1);
    let worst = 0;
    let moved = 0;
    for (const [k, v] of big) {
      const w = small.get(k)!;
      v.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - w[i]!))));
      v.forEach((x, i) => (moved = Math.max(moved, Math.abs(x - base.get(k)![i]!))));
    }
    assert.ok(worst < 1e-5, `accumulated differs from the large batch by ${worst}`);
    assert.ok(moved > 1e-3, `a different batch size must give a different result (${moved})`);
  });

  test('a diverging loss stops the run at that step and keeps the last good checkpoint', async () => {
    const out = join(root, 'nan');
    const sink = quietSink();
    const r = await train({
      config: runConfig({
        model: gpt2,
        train_file: data,
        output_dir: out,
        method: 'vera',
        r: 8,
        max_steps: 20,
        save_steps: 3,
      }),
      sink,
      // After step 7 a λ vector goes NaN: step 8's loss is NaN.
      onStep: (step, run) => {
        if (step === 7) {
          const p = run.params[0]![1];
          p.backend.fill(p.view('test'), NaN);
        }
      },
    });
    assert.equal(r.status, 'diverged');
    assert.equal(r.step, 7);
    assert.match(r.message, /the loss became NaN at step 8; stopped without applying that update/);
    assert.match(r.message, /checkpoint-6/);
    const dirs = readdirSync(out).filter((d) => d.startsWith('checkpoint-'));
    assert.deepEqual(dirs.sort(), ['checkpoint-3', 'checkpoint-6']);
    assert.equal(readFileSync(join(out, 'latest'), 'utf8'), 'checkpoint-6\n');
    assert.ok(!existsSync(join(out, 'adapter')), 'no final adapter from a diverged run');
    const events = readJsonLines(join(out, 'metrics.jsonl')).filter((x) => x['event'] === 'diverged');
    assert.deepEqual(
      events.map((e) => [e['step'], e['loss']]),
      [[8, 'NaN']],
    );
  });

  test('a loss that diverges between read points stops the run at the next one, saving nothing from that step on', async () => {
    const out = join(root, 'nan-late');
    const r = await train({
      config: runConfig({
        model: gpt2,
        train_file: data,
        output_dir: out,
        method: 'vera',
        r: 8,
        max_steps: 20,
        save_steps: 3,
        logging_steps: 5,
      }),
      sink: quietSink(),
      // Step 8's loss is NaN; the losses of steps 7 and 8 are read at step 9 (a checkpoint step).
      onStep: (step, run) => {
        if (step === 7) {
          const p = run.params[0]![1];
          p.backend.fill(p.view('test'), NaN);
        }
      },
    });
    assert.equal(r.status, 'diverged');
    assert.equal(r.step, 7, 'the last good step');
    assert.match(
      r.message,
      /the loss became NaN at step 8; stopped at step 9, the next step that reads losses back, without saving any update from step 8 on \(the last good checkpoint is .*checkpoint-6;/,
    );
    assert.deepEqual(
      readdirSync(out)
        .filter((d) => d.startsWith('checkpoint-'))
        .sort(),
      ['checkpoint-3', 'checkpoint-6'],
    );
    assert.ok(!existsSync(join(out, 'adapter')), 'no final adapter from a diverged run');
    const records = readJsonLines(join(out, 'metrics.jsonl'));
    assert.deepEqual(
      records.filter((x) => x['event'] === 'diverged').map((e) => [e['step'], e['loss']]),
      [[8, 'NaN']],
    );
    assert.deepEqual(
      records.filter((x) => x['type'] === 'train').map((x) => x['step']),
      [5],
    );
  });

  test('stopped cleanly and resumed, a run ends with the adapter of an uninterrupted one, byte for byte', async () => {
    const config = (out: string) =>
      runConfig({
        model: gpt2,
        train_file: data,
        output_dir: out,
        method: 'vera',
        r: 16,
        lr: 3e-2,
        head_lr: 1e-2,
        batch_size: 4,
        gradient_accumulation_steps: 2,
        adapter_dropout: 0.2,
        lr_scheduler: 'cosine',
        warmup_steps: 3,
        max_steps: 16,
        save_steps: 4,
        validation_fraction: 0.1,
        eval_steps: 6,
        weight_decay: 0.01,
        label_smoothing: 0.1,
      });
    const whole = await train({ config: config(join(root, 'whole')), sink: quietSink() });
    assert.equal(whole.status, 'completed');

    const stop = new AbortController();
    const part = await train({
      config: config(join(root, 'parts')),
      sink: quietSink(),
      signal: stop.signal,
      onStep: (step) => step === 9 && stop.abort(),
    });
    assert.equal(part.status, 'interrupted');
    assert.equal(part.checkpoint, join(root, 'parts', 'checkpoint-9'));
    const rest = await train({ config: { ...config(join(root, 'parts')), resume: true }, sink: quietSink() });
    assert.equal(rest.status, 'completed', rest.message);
    for (const f of ['adapter/adapter_model.safetensors', 'best/adapter_model.safetensors'])
      assert.deepEqual(readFileSync(join(root, 'parts', f)), readFileSync(join(root, 'whole', f)), f);
    assert.deepEqual(rest.best, whole.best);
    // The metrics read as one run: the same losses at the same steps.
    const losses = (dir: string) =>
      readJsonLines(join(root, dir, 'metrics.jsonl'))
        .filter((x) => x['type'] !== 'event')
        .map((x) => [x['type'], x['step'], x['loss'] ?? x['eval_loss']]);
    assert.deepEqual(losses('parts'), losses('whole'));

    // load_best_model_at_end: the same run, but its final adapter/ is a copy of best/.
    const atBest = await train({
      config: { ...config(join(root, 'at-best')), load_best_model_at_end: true },
      sink: quietSink(),
    });
    assert.deepEqual(atBest.best, whole.best);
    assert.match(atBest.message, /it is the best evaluation's/);
    const bytes = (dir: string, sub: string) => readFileSync(join(root, dir, sub, 'adapter_model.safetensors'));
    assert.deepEqual(bytes('at-best', 'adapter'), bytes('whole', 'best'));
    assert.deepEqual(
      readdirSync(join(root, 'at-best', 'adapter')).sort(),
      readdirSync(join(root, 'whole', 'best')).sort(),
    );
    if (whole.best!.step !== whole.step) assert.notDeepEqual(bytes('whole', 'adapter'), bytes('whole', 'best'));
  });

  test('a full fine-tune stopped and resumed ends with the same model.safetensors', async () => {
    const config = (out: string) =>
      runConfig({
        model: gpt2,
        train_file: data,
        output_dir: out,
        method: 'full',
        lr: 1e-3,
        max_steps: 6,
        save_steps: 2,
      });
    await train({ config: config(join(root, 'full-whole')), sink: quietSink() });
    const stop = new AbortController();
    const part = await train({
      config: config(join(root, 'full-parts')),
      sink: quietSink(),
      signal: stop.signal,
      onStep: (step) => step === 3 && stop.abort(),
    });
    assert.equal(part.status, 'interrupted');
    await train({ config: { ...config(join(root, 'full-parts')), resume: true }, sink: quietSink() });
    assert.deepEqual(
      readFileSync(join(root, 'full-parts', 'model', 'model.safetensors')),
      readFileSync(join(root, 'full-whole', 'model', 'model.safetensors')),
    );
  });

  test('early stopping: patience evaluations without improvement end the run with its outputs', async () => {
    const out = join(root, 'patience');
    const r = await train({
      // A learning rate too small to change a prediction: the accuracy never improves on the first evaluation.
      config: runConfig({
        model: gpt2,
        train_file: data,
        output_dir: out,
        method: 'vera',
        r: 8,
        lr: 1e-12,
        head_lr: 1e-12,
        max_steps: 20,
        validation_fraction: 0.1,
        eval_steps: 2,
        patience: 2,
      }),
      sink: quietSink(),
    });
    assert.equal(r.status, 'early-stopped', r.message);
    assert.equal(r.step, 6);
    assert.equal(r.best?.step, 2);
    assert.ok(existsSync(join(out, 'adapter', 'adapter_model.safetensors')));
    assert.equal(readFileSync(join(out, 'latest'), 'utf8'), 'checkpoint-6\n');
    const evals = readJsonLines(join(out, 'metrics.jsonl')).filter((x) => x['type'] === 'eval');
    assert.deepEqual(
      evals.map((e) => e['best']),
      [true, false, false],
    );
  });

  test('a run refuses an output_dir with checkpoints unless resuming or overwriting; resume checks the config', async () => {
    const out = join(root, 'refuse');
    const cfg = runConfig({ model: gpt2, train_file: data, output_dir: out, method: 'vera', r: 8, max_steps: 2 });
    await train({ config: cfg, sink: quietSink() });
    await assert.rejects(train({ config: cfg, sink: quietSink() }), /already holds checkpoints: pass --resume/);
    await assert.rejects(
      train({ config: { ...cfg, resume: true, r: 4 }, sink: quietSink() }),
      /--r is 4 but the run in .* used 8/,
    );
    const again = await train({ config: { ...cfg, overwrite_output_dir: true }, sink: quietSink() });
    assert.equal(again.status, 'completed');
  });
});
