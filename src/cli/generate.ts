// `vera generate`: text generation with a causal LM (and optionally a PEFT adapter) from the command line,
// streamed to stdout through the tokenizer's streaming decoder, or printed as one JSON object. Also holds
// the model + adapter loading `vera classify` shares.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { defaultBackend } from '../backends/registry.js';
import { streamGenerate } from '../generate/generate.js';
import type { GenerateOptions } from '../generate/generate.js';
import { readJsonFile } from '../io/json.js';
import { Tokenizer, createStreamDecoder, hasTokenizerFiles } from '../io/tokenizer.js';
import type { PreTrainedModel } from '../models/pretrained.js';
import { loadTrained } from '../adapters/load.js';
import {
  backendHelp,
  deviceHelp,
  dtypeHelp,
  dtypeFlag,
  intFlag,
  numberFlag,
  parseArgs,
  parseCommandArgs as usage,
  progressLogger,
  selectBackend,
  threadsHelp,
  writeOut,
} from './common.js';
import { parseIds } from './logits.js';

export const GENERATE_USAGE = `Usage: vera generate --model DIR (--prompt TEXT | --chat TEXT | --ids 1,2,3) [options]

Generates text with a causal LM (GPT-2, Llama, Mistral, Qwen2) and streams it to stdout as the
tokens come, followed by a newline. Stops at the end-of-sequence token (generation_config.json's
or config.json's eos_token_id), at a --stop string (left out of the text), or after
--max_new_tokens. Greedy unless --temperature is above 0.

Input (exactly one):
  --prompt TEXT             Text, tokenized with the model directory's tokenizer (special tokens added)
  --chat TEXT               One user message, wrapped by the tokenizer's chat template
  --ids LIST                Comma-separated prompt token ids (works without a tokenizer; then the
                            generated ids are printed instead of text)

Options:
  --model DIR               A Hugging Face model directory (config.json, model.safetensors, tokenizer)
  --adapter DIR             A PEFT adapter directory (adapter_config.json + adapter_model.safetensors)
  --merge                   Merge the adapter into the weights first (faster decoding)
  --max_new_tokens N        Tokens to generate at most (default 64, or what GPT-2's n_positions leaves)
  --temperature T           0 = greedy (default); above 0 samples with this temperature
  --top_k K                 Sampling: keep the K most likely tokens (default 50; 0 = all)
  --top_p P                 Sampling: keep the most likely tokens up to probability P (default 1)
  --repetition_penalty R    Above 1 discourages repeating the prompt's and generated tokens (default 1)
  --seed N                  Seed of the sampling (default: a random seed, shown with --verbose)
  --stop TEXT               Stop when the text contains TEXT (repeatable)
  --json                    Print one JSON object instead of streaming:
                            {"prompt_ids","generated_ids","text","finish_reason","tokens_per_second"}
                            (finish_reason "eos", "stop" or "length"; text null without a tokenizer;
                            tokens per second of the whole generation, prompt included)
  --verbose                 Loading and timing lines on stderr (default: only when stderr is a terminal)
${backendHelp(28)}${deviceHelp(28)}${threadsHelp(28)}${dtypeHelp(28)}`;

// ---- shared with `vera classify` -------------------------------------------------------------

/**
 * Loads the model and, with `adapter`, a PEFT adapter into it, in the class the adapter needs (a
 * classification adapter trained on a causal-LM base gets the family's classifier, as `vera train`
 * built it). The adapter layers live in the model's own module tree, so its forward runs them; with
 * `merge` they are merged and unloaded, leaving a plain model.
 */
export function loadWithAdapter(
  dir: string,
  adapter: string | undefined,
  merge: boolean,
  dtype: 'f32' | 'bf16' = 'f32',
): PreTrainedModel {
  if (merge && adapter === undefined) throw new Error('--merge needs --adapter');
  return loadTrained(dir, adapter ?? null, { merge, dtype }).model;
}

// ---- generate ---------------------------------------------------------------------------------

export type FinishReason = 'eos' | 'stop' | 'length';

/** The integer ids in a config value (a number or a list of numbers). */
function idList(v: unknown): number[] {
  const list = Array.isArray(v) ? v : [v];
  return list.filter((x): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0);
}

/** End-of-sequence ids as transformers' generate finds them: generation_config.json, else config.json, else the tokenizer. */
function eosIds(dir: string, model: PreTrainedModel, tokenizer: Tokenizer | null): number[] {
  const genPath = join(dir, 'generation_config.json');
  if (existsSync(genPath)) {
    const gen = readJsonFile(genPath);
    if (gen !== null && typeof gen === 'object' && 'eos_token_id' in gen)
      return idList((gen as Record<string, unknown>)['eos_token_id']);
  }
  if (model.config['eos_token_id'] !== undefined && model.config['eos_token_id'] !== null)
    return idList(model.config['eos_token_id']);
  return tokenizer?.eosTokenId != null ? [tokenizer.eosTokenId] : [];
}

/**
 * Stop-string bookkeeping over the growing decoded text: finds the first complete stop string, and how
 * much of the text can be shown without showing the start of a stop string that may still complete.
 */
class StopStrings {
  private readonly longest: number;

  constructor(private readonly stops: readonly string[]) {
    this.longest = Math.max(0, ...stops.map((s) => s.length));
  }

  /** Index of the earliest stop string in `text` at or after `from`, or -1. */
  find(text: string, from: number): number {
    let best = -1;
    for (const s of this.stops) {
      const i = text.indexOf(s, from);
      if (i !== -1 && (best === -1 || i < best)) best = i;
    }
    return best;
  }

  /** Length of the prefix of `text` that no later text can turn into part of a stop string. */
  safeLength(text: string, from: number): number {
    for (let k = Math.min(this.longest - 1, text.length - from); k > 0; k--) {
      const tail = text.slice(text.length - k);
      if (this.stops.some((s) => s.startsWith(tail))) return text.length - k;
    }
    return text.length;
  }
}

export async function generateCommand(args: string[]): Promise<number> {
  const { values } = usage('generate', () =>
    parseArgs({
      args,
      options: {
        model: { type: 'string' },
        adapter: { type: 'string' },
        merge: { type: 'boolean', default: false },
        prompt: { type: 'string' },
        chat: { type: 'string' },
        ids: { type: 'string' },
        max_new_tokens: { type: 'string' },
        temperature: { type: 'string' },
        top_k: { type: 'string' },
        top_p: { type: 'string' },
        repetition_penalty: { type: 'string' },
        seed: { type: 'string' },
        stop: { type: 'string', multiple: true },
        json: { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
        backend: { type: 'string' },
        threads: { type: 'string' },
        device: { type: 'string' },
        dtype: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }),
  );
  if (values.help) {
    await writeOut(GENERATE_USAGE);
    return 0;
  }
  // Every flag is checked before the (slow) model load.
  if (!values.model) throw new Error('--model is required (see vera generate --help)');
  const inputs = [values.prompt, values.chat, values.ids].filter((v) => v !== undefined).length;
  if (inputs !== 1) throw new Error('Give exactly one of --prompt, --chat and --ids');
  if (values.merge && !values.adapter) throw new Error('--merge needs --adapter');
  let maxNewTokens = values.max_new_tokens === undefined ? 64 : intFlag('max_new_tokens', values.max_new_tokens, 0);
  const temperature =
    values.temperature === undefined ? 0 : numberFlag('temperature', values.temperature, (t) => t >= 0, 'a number ≥ 0');
  const doSample = temperature > 0;
  const topK = values.top_k === undefined ? undefined : intFlag('top_k', values.top_k, 0);
  const topP =
    values.top_p === undefined
      ? undefined
      : numberFlag('top_p', values.top_p, (p) => p > 0 && p <= 1, 'a number in (0, 1]');
  const repetitionPenalty =
    values.repetition_penalty === undefined
      ? undefined
      : numberFlag('repetition_penalty', values.repetition_penalty, (r) => r > 0, 'a number > 0');
  const seed = values.seed === undefined ? undefined : intFlag('seed', values.seed, 0);
  const dtype = dtypeFlag(values.dtype);
  const stops = values.stop ?? [];
  if (stops.some((s) => s === '')) throw new Error('--stop needs a non-empty text');
  const promptIds = values.ids === undefined ? undefined : parseIds(values.ids);
  const log = progressLogger(values.verbose);
  if (!doSample) {
    const ignored = (['top_k', 'top_p', 'seed'] as const).filter((k) => values[k] !== undefined);
    if (ignored.length > 0)
      process.stderr.write(
        `vera: ${ignored.map((k) => `--${k}`).join(', ')} ${ignored.length > 1 ? 'are' : 'is'} ignored without sampling (--temperature above 0)\n`,
      );
  }

  selectBackend(values.backend, values.threads, values.device);
  const t0 = performance.now();
  const model = loadWithAdapter(values.model, values.adapter, values.merge, dtype);
  if (model.task !== 'causal-lm')
    throw new Error(
      `${values.adapter === undefined ? values.model : `${values.model} with the adapter ${values.adapter}`} is a ${model.architecture} (${model.task}); vera generate needs a causal LM (try vera classify)`,
    );
  // --ids needs no tokenizer; text in or stop strings do (fromDir's error names the files it looked for).
  const needTokenizer = promptIds === undefined || stops.length > 0;
  const tokenizer = needTokenizer || hasTokenizerFiles(values.model) ? Tokenizer.fromDir(values.model) : null;
  const backend = defaultBackend();
  log(
    `vera: loaded ${model.architecture} from ${values.model}${values.adapter ? ` with adapter ${values.adapter}${values.merge ? ' (merged)' : ''}` : ''} in ${((performance.now() - t0) / 1000).toFixed(2)} s (backend ${backend.name}${backend.getThreads ? `, ${backend.getThreads()} thread(s)` : ''})`,
  );

  let prompt: number[];
  if (promptIds !== undefined) prompt = promptIds;
  else if (values.chat !== undefined) {
    const text = tokenizer!.applyChatTemplate([{ role: 'user', content: values.chat }], { addGenerationPrompt: true });
    // The template writes the special tokens itself (transformers tokenizes it with add_special_tokens=False).
    prompt = tokenizer!.encode(text, { addSpecialTokens: false }).ids;
  } else prompt = tokenizer!.encode(values.prompt!).ids;
  if (prompt.length === 0) throw new Error('The prompt encodes to no tokens');
  const vocab = model.config['vocab_size'];
  if (typeof vocab === 'number') {
    const bad = prompt.find((id) => id >= vocab);
    if (bad !== undefined)
      throw new Error(`Prompt token id ${bad} is outside the model's vocabulary (vocab_size ${vocab})`);
  }
  // GPT-2's learned positions end at n_positions; past it the embedding lookup has no row. The default
  // budget shrinks to fit; an explicit one that does not fit is an error.
  const nPositions = model.config['n_positions'];
  if (typeof nPositions === 'number' && prompt.length + maxNewTokens > nPositions) {
    if (values.max_new_tokens !== undefined || prompt.length >= nPositions)
      throw new Error(
        `The prompt (${prompt.length} tokens) plus ${maxNewTokens} new tokens exceeds the model's n_positions ${nPositions}`,
      );
    maxNewTokens = nPositions - prompt.length;
  }

  const stopTokenIds = eosIds(values.model, model, tokenizer);
  const sampleSeed = doSample ? (seed ?? Math.floor(Math.random() * 2 ** 32)) : undefined;
  if (sampleSeed !== undefined && seed === undefined) log(`vera: sampling with seed ${sampleSeed}`);
  const opts: GenerateOptions = { maxNewTokens, stopTokenIds, doSample };
  if (doSample) {
    opts.temperature = temperature;
    opts.seed = sampleSeed!;
    if (topK !== undefined) opts.topK = topK;
    if (topP !== undefined) opts.topP = topP;
  }
  if (repetitionPenalty !== undefined) opts.repetitionPenalty = repetitionPenalty;

  const stream = !values.json;
  const decoder = tokenizer ? createStreamDecoder(tokenizer) : null;
  const stopper = new StopStrings(stops);
  const eos = new Set(stopTokenIds);
  const generated: number[] = [];
  let text = ''; // everything decoded so far
  let shown = 0; // chars of `text` already on stdout
  let cut = -1; // where a stop string starts in `text`
  let finish: FinishReason = 'length';
  const show = async (upTo: number) => {
    if (stream && upTo > shown) await writeOut(text.slice(shown, upTo));
    shown = Math.max(shown, upTo);
  };

  const tStart = performance.now();
  for await (const { tokens } of streamGenerate(model, [prompt], opts)) {
    const id = tokens[0]!;
    generated.push(id);
    if (eos.has(id)) finish = 'eos';
    if (decoder === null) {
      if (stream) await writeOut(`${generated.length > 1 ? ' ' : ''}${id}`);
      continue;
    }
    text += decoder.push(id);
    cut = stopper.find(text, shown);
    if (cut !== -1) break; // leaving the loop ends the generator, which frees its cache
    await show(stopper.safeLength(text, shown));
  }
  const seconds = (performance.now() - tStart) / 1000;
  if (decoder !== null) {
    if (cut === -1) {
      text += decoder.flush();
      cut = stopper.find(text, shown);
    }
    if (cut !== -1) {
      text = text.slice(0, cut);
      finish = 'stop';
    }
    await show(text.length);
  }
  const tokensPerSecond = seconds > 0 ? Math.round((generated.length / seconds) * 100) / 100 : 0;
  if (values.json) {
    const out = {
      prompt_ids: prompt,
      generated_ids: generated,
      text: decoder === null ? null : text,
      finish_reason: finish,
      tokens_per_second: tokensPerSecond,
    };
    await writeOut(`${JSON.stringify(out)}\n`);
  } else await writeOut('\n');
  log(`vera: ${generated.length} token(s) in ${seconds.toFixed(2)} s (${tokensPerSecond} tokens/s); finish: ${finish}`);
  return 0;
}
