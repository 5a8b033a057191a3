// Instruction-tuning data from JSONL: {prompt, response} pairs and {messages: [...]} conversations,
// tokenized with the loss (labels ≠ −100) on the response / assistant turns only.
//
// {prompt, response}: with a chat template, the prompt is rendered as [{role: 'user', content: prompt}]
// with add_generation_prompt; without one it is the tokenizer's special prefix (BOS) + the prompt. Prompt
// and response are tokenized separately (no special tokens) and concatenated, then EOS is appended:
// ids = prompt ids ++ response ids ++ [eos], labels = −100 × |prompt ids| ++ response ids ++ [eos]. The
// prompt's ids are thus exactly what generation will see, and the unmasked ids decode to response + EOS.
//
// {messages}: the whole conversation is rendered with the chat template (no generation prompt) and
// tokenized once (no special tokens added; the template writes BOS itself). Assistant turns are found
// by rendering prefixes: for assistant message k,
//   before_k = render(messages[0..k), add_generation_prompt = true)   — the text up to its content,
//   upto_k   = render(messages[0..k], add_generation_prompt = false)  — the text through its end of turn.
// Both must be string prefixes of the full rendering (a template that rewrites earlier turns, e.g. one
// that drops reasoning from all but the last turn, fails this: a row error). A template that ignores
// add_generation_prompt and always appends the generation prompt (Llama 3's base template) has that
// prompt — render([], add_generation_prompt = true) — cut from the end of upto_k. Each prefix is tokenized
// and compared with the full ids: the turn's token span is [lcp(ids(before_k), ids), lcp(ids(upto_k),
// ids)), lcp being the length of the common prefix. Where the prefix ids are a token prefix of the full
// ids — always, when turns are delimited by special tokens — this is [|ids(before_k)|, |ids(upto_k)|);
// a token straddling the content's start is counted in the turn, one straddling its end is not. The span
// covers the content and the template's end-of-turn text (e.g. "<|im_end|>\n", "<|eot_id|>", " </s>"),
// so the model learns to stop; everything else (system, user, role headers) is −100. Tokens after the
// last assistant turn are dropped: they would feed no target.

import type { ChatMessage, Tokenizer } from '../io/tokenizer.js';
import { describeError } from '../io/errors.js';
import { DataError, RowPolicy, where } from './errors.js';
import { type Dataset, IGNORE_INDEX, Ragged, TokenDataset } from './example.js';
import { asRecord, parseJsonLines, readTextFile, show } from './jsonl.js';
import { rawIds, specialPrefix } from './tokens.js';

export interface InstructionOpts {
  tokenizer: Tokenizer;
  /** Cut examples to this many tokens (from the end); an example left with no response token is a bad row. */
  maxLength?: number;
  /** Key of the prompt (default 'prompt'). */
  promptKey?: string;
  /** Key of the response (default 'response'). */
  responseKey?: string;
  /** Key of a chat conversation, a list of {role, content} (default 'messages'). */
  messagesKey?: string;
  onBadRow?: 'error' | 'skip';
}

/** One tokenized example, or the reason the row is unusable. */
type Encoded = { ids: number[]; labels: number[] } | { error: string };

/**
 * Loads instruction data (JSON Lines; see the file comment for the exact masking). A line with the
 * messages key is a conversation, else it needs the prompt and response keys. Bad rows (invalid JSON,
 * missing keys, empty response, no assistant turn, a template error) throw a DataError naming file and
 * line, or are skipped and counted with onBadRow 'skip'.
 */
export function loadInstructions(file: string, opts: InstructionOpts): Dataset {
  const tok = opts.tokenizer;
  const promptKey = opts.promptKey ?? 'prompt';
  const responseKey = opts.responseKey ?? 'response';
  const messagesKey = opts.messagesKey ?? 'messages';
  if (opts.maxLength !== undefined && (!Number.isInteger(opts.maxLength) || opts.maxLength < 1))
    throw new RangeError(`[data] maxLength must be a positive integer, got ${opts.maxLength}`);
  const policy = new RowPolicy(file, opts.onBadRow);
  const inputIds = new Ragged();
  const labels = new Ragged();
  const sources: string[] = [];
  for (const r of parseJsonLines(readTextFile(file))) {
    if (r.error !== undefined) {
      policy.bad(r.line, r.error);
      continue;
    }
    const obj = asRecord(r.value);
    if (obj === null) {
      policy.bad(r.line, `expected a JSON object, got ${show(r.value)}`);
      continue;
    }
    let enc: Encoded;
    if (messagesKey in obj) {
      if (tok.chatTemplate === null)
        throw new DataError(
          `[data] ${where(file, r.line)}: "${messagesKey}" conversations need a chat template, and the tokenizer (${tok.source}) has none`,
          { file, line: r.line },
        );
      enc = encodeConversation(tok, obj[messagesKey], messagesKey);
    } else if (promptKey in obj && responseKey in obj) {
      enc = encodePromptResponse(tok, obj[promptKey], obj[responseKey], promptKey, responseKey);
    } else {
      const keys = Object.keys(obj).map((k) => JSON.stringify(k));
      policy.bad(
        r.line,
        `expected "${promptKey}" and "${responseKey}", or "${messagesKey}"; the line has ${keys.length > 0 ? keys.join(', ') : 'no keys'}`,
      );
      continue;
    }
    if ('error' in enc) {
      policy.bad(r.line, enc.error);
      continue;
    }
    let { ids, labels: lab } = enc;
    if (opts.maxLength !== undefined && ids.length > opts.maxLength) {
      ids = ids.slice(0, opts.maxLength);
      lab = lab.slice(0, opts.maxLength);
      if (lab.every((l) => l === IGNORE_INDEX)) {
        policy.bad(r.line, `the prompt alone fills maxLength ${opts.maxLength}: no response token is left`);
        continue;
      }
    }
    inputIds.push(ids);
    labels.push(lab);
    sources.push(where(file, r.line));
  }
  if (inputIds.rows === 0)
    throw new DataError(
      `[data] ${file}: no usable rows${policy.skipped > 0 ? ` (${policy.skipped} malformed rows skipped)` : ''}`,
      { file },
    );
  return new TokenDataset({ kind: 'causal-lm', inputIds, labels, sources, skipped: policy.skipped });
}

/**
 * The ids a model sees for a prompt, in training and when asked to generate its response: the chat
 * template's rendering of it as a user turn (with the generation prompt), or without a template the
 * tokenizer's special prefix (BOS) and the prompt's ids. Throws the template's error.
 */
export function instructionPromptIds(tok: Tokenizer, prompt: string): number[] {
  if (tok.chatTemplate === null) return [...specialPrefix(tok), ...rawIds(tok, prompt)];
  return rawIds(tok, tok.applyChatTemplate([{ role: 'user', content: prompt }], { addGenerationPrompt: true }));
}

function encodePromptResponse(tok: Tokenizer, prompt: unknown, response: unknown, pk: string, rk: string): Encoded {
  if (typeof prompt !== 'string') return { error: `"${pk}" must be a string, got ${show(prompt)}` };
  if (typeof response !== 'string') return { error: `"${rk}" must be a string, got ${show(response)}` };
  if (response.trim() === '') return { error: `empty "${rk}": nothing to learn` };
  let promptIds: number[];
  try {
    promptIds = instructionPromptIds(tok, prompt);
  } catch (e) {
    return { error: describeError(e) };
  }
  const responseIds = rawIds(tok, response);
  const eos = tok.eosTokenId;
  if (eos !== null && responseIds[responseIds.length - 1] !== eos) responseIds.push(eos);
  return {
    ids: [...promptIds, ...responseIds],
    labels: [...new Array<number>(promptIds.length).fill(IGNORE_INDEX), ...responseIds],
  };
}

/** The messages value as ChatMessage[], or the reason it is not one. */
function checkMessages(v: unknown, key: string): ChatMessage[] | { error: string } {
  if (!Array.isArray(v) || v.length === 0) return { error: `"${key}" must be a non-empty list, got ${show(v)}` };
  const out: ChatMessage[] = [];
  for (let k = 0; k < v.length; k++) {
    const m = asRecord(v[k]);
    if (m === null || typeof m['role'] !== 'string' || typeof m['content'] !== 'string')
      return { error: `"${key}"[${k}] must be {"role": string, "content": string}, got ${show(v[k])}` };
    out.push({ ...m, role: m['role'], content: m['content'] });
  }
  return out;
}

/** Length of the common prefix of a and b. */
function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let k = 0;
  while (k < n && a[k] === b[k]) k++;
  return k;
}

/** render([], add_generation_prompt) — the bare generation prompt — or '' when the template cannot render no messages. */
function bareGenerationPrompt(tok: Tokenizer): string {
  try {
    return tok.applyChatTemplate([], { addGenerationPrompt: true });
  } catch {
    return '';
  }
}

function encodeConversation(tok: Tokenizer, value: unknown, key: string): Encoded {
  const messages = checkMessages(value, key);
  if ('error' in messages) return messages;
  if (!messages.some((m) => m.role === 'assistant'))
    return { error: `"${key}" has no assistant turn: nothing to learn` };
  const render = (msgs: ChatMessage[], gen: boolean) => tok.applyChatTemplate(msgs, { addGenerationPrompt: gen });
  const unstable = (k: number) => ({
    error: `the chat template does not render this conversation prefix by prefix (assistant message ${k}); its turns cannot be located`,
  });
  try {
    const full = render(messages, false);
    // A template that ignores add_generation_prompt and always appends it (Llama 3's base template) ends
    // every rendering with it; it is cut from the end of upto_k (and so from the end of the example).
    let gen = render(messages, true) === full ? bareGenerationPrompt(tok) : '';
    if (!full.endsWith(gen)) gen = '';
    const ids = rawIds(tok, full);
    const labels = new Array<number>(ids.length).fill(IGNORE_INDEX);
    let lastTrained = -1;
    for (let k = 0; k < messages.length; k++) {
      if (messages[k]!.role !== 'assistant') continue;
      const before = render(messages.slice(0, k), true);
      let upto = render(messages.slice(0, k + 1), false);
      if (gen !== '' && upto.endsWith(gen)) upto = upto.slice(0, upto.length - gen.length);
      if (!full.startsWith(upto)) return unstable(k);
      if (!full.startsWith(before) || upto.length < before.length) return unstable(k);
      const start = commonPrefix(rawIds(tok, before), ids);
      const end = commonPrefix(rawIds(tok, upto), ids);
      for (let t = start; t < end; t++) labels[t] = ids[t]!;
      if (end > start) lastTrained = end;
    }
    if (lastTrained < 0) return { error: `the assistant turns of "${key}" render to no tokens` };
    // Tokens after the last assistant turn (a template's trailing generation prompt) feed no target.
    return { ids: ids.slice(0, lastTrained), labels: labels.slice(0, lastTrained) };
  } catch (e) {
    return { error: describeError(e) };
  }
}
