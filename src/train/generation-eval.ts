// Evaluation by generation, as the VeRA paper scores E2E: each prompt of an instruction file
// ({prompt, response} JSON Lines) is continued greedily by the model, and the outputs are scored against
// every response given for that prompt (rows with the same prompt are references of one example) with
// BLEU (sacreBLEU), ROUGE-L (rouge-score), NIST (mteval-v13a) and CIDEr (pycocoevalcap).

import { type Collective, allGatherJson } from './distributed/collective.js';
import { DataError, where } from '../data/errors.js';
import { instructionPromptIds } from '../data/instructions.js';
import { asRecord, parseJsonLines, readTextFile, show } from '../data/jsonl.js';
import { generate } from '../generate/generate.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { bleu } from '../metrics/bleu.js';
import { cider } from '../metrics/cider.js';
import { nist } from '../metrics/nist.js';
import { rougeL } from '../metrics/rouge.js';
import { toReferenceStreams } from '../metrics/util.js';
import type { PreTrainedModel } from '../models/pretrained.js';

/** One prompt and every response the file gives for it. */
export interface GenerationExample {
  prompt: string;
  references: string[];
}

/**
 * The examples of a {prompt, response} JSON Lines file, prompts in order of first appearance. A line
 * that is not an object with string prompt and response is a DataError naming the file and line.
 */
export function readGenerationExamples(
  file: string,
  opts: { promptKey?: string; responseKey?: string } = {},
): GenerationExample[] {
  const [pk, rk] = [opts.promptKey ?? 'prompt', opts.responseKey ?? 'response'];
  const byPrompt = new Map<string, string[]>();
  for (const { value, line, error } of parseJsonLines(readTextFile(file))) {
    const fail = (why: string): never => {
      throw new DataError(`[data] ${where(file, line)}: ${why}`, { file, line });
    };
    if (error !== undefined) fail(error);
    const row = asRecord(value) ?? fail(`expected a JSON object, got ${show(value)}`);
    const [prompt, response] = [row[pk], row[rk]];
    if (typeof prompt !== 'string') fail(`"${pk}" must be a string, got ${show(prompt)}`);
    if (typeof response !== 'string') fail(`"${rk}" must be a string, got ${show(response)}`);
    const refs = byPrompt.get(prompt as string) ?? [];
    refs.push(response as string);
    byPrompt.set(prompt as string, refs);
  }
  if (byPrompt.size === 0) throw new DataError(`[data] ${file}: no examples`, { file });
  return [...byPrompt].map(([prompt, references]) => ({ prompt, references }));
}

export interface GenerationScores {
  examples: number;
  bleu: number;
  rouge_l: number;
  nist: number;
  cider: number;
  /** Every output, in the examples' order. */
  outputs: string[];
}

/**
 * Generates greedily for each example (batches of `batchSize`, left-padded, at most `maxNewTokens` new
 * tokens, stopping at EOS) and scores the outputs. `onBatch` reports progress. With a process group of
 * several ranks (`group`), rank r generates the batches b with b mod size = r and the outputs are
 * gathered: every rank returns the scores one process computes.
 */
export function evaluateGeneration(
  model: PreTrainedModel,
  tokenizer: Tokenizer,
  examples: readonly GenerationExample[],
  opts: {
    maxNewTokens?: number;
    batchSize?: number;
    padTokenId: number;
    onBatch?: (done: number) => void;
    group?: Collective;
  },
): GenerationScores {
  const batchSize = opts.batchSize ?? 16;
  const rank = opts.group?.rank ?? 0;
  const size = opts.group?.size ?? 1;
  const mine: { b: number; outputs: string[] }[] = [];
  let done = 0;
  for (let b = rank, start = rank * batchSize; start < examples.length; b += size, start += size * batchSize) {
    const part = examples.slice(start, start + batchSize);
    const prompts = part.map((e) => instructionPromptIds(tokenizer, e.prompt));
    const stop = tokenizer.eosTokenId === null ? {} : { stopTokenIds: [tokenizer.eosTokenId] };
    const tokens = generate(model, prompts, {
      maxNewTokens: opts.maxNewTokens ?? 64,
      padTokenId: opts.padTokenId,
      ...stop,
    });
    mine.push({ b, outputs: tokens.map((t) => tokenizer.decode(t, { skipSpecialTokens: true }).trim()) });
    done += part.length;
    opts.onBatch?.(done);
  }
  const all = opts.group && size > 1 ? allGatherJson(opts.group, mine).flat() : mine;
  const outputs = all.sort((x, y) => x.b - y.b).flatMap((p) => p.outputs);
  const refs = toReferenceStreams(examples.map((e) => e.references));
  return {
    examples: examples.length,
    bleu: bleu(outputs, refs).score,
    rouge_l: rougeL(outputs, refs).fmeasure * 100,
    nist: nist(outputs, refs),
    cider: cider(outputs, refs),
    outputs,
  };
}
