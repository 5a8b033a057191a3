// Autoregressive generation for causal LMs: left-padded batches (position ids from the mask, padded keys
// masked), a KV cache sized for prompt + new tokens, greedy or seeded sampling, stop tokens, streaming.
// The state lives on the device (decoder.ts): each step runs under noGrad and scope(), chooses the next
// tokens on the backend and reads back only the chosen ids (greedy) or each row's top-k candidates
// (sampling): flat memory, and no per-token copy of the logits.

import type { PreTrainedModel } from '../models/pretrained.js';
import { Decoder, type GenerateOptions, type GenerationStep } from './decoder.js';

export { Decoder, type ForwardWrapper, type GenerateOptions, type GenerationStep } from './decoder.js';

/** The decoding loop as a synchronous iterator of steps (the cache is freed when it ends or is closed). */
export function* decodeSteps(
  model: PreTrainedModel,
  prompts: readonly (readonly number[])[],
  opts: GenerateOptions = {},
): Generator<GenerationStep, void, undefined> {
  const decoder = new Decoder(model, prompts, opts);
  try {
    while (!decoder.finished) yield decoder.stepSync();
  } finally {
    decoder.dispose();
  }
}

/** The new tokens of each prompt (stop token included when produced). */
export function generate(
  model: PreTrainedModel,
  prompts: readonly (readonly number[])[],
  opts: GenerateOptions = {},
): number[][] {
  const out = prompts.map((): number[] => []);
  for (const { tokens } of decodeSteps(model, prompts, opts)) tokens.forEach((t, r) => t !== null && out[r]!.push(t));
  return out;
}

/**
 * Streams steps as they are produced: each step's ids are read asynchronously (Tensor.data()), and the
 * event loop runs between steps.
 */
export async function* streamGenerate(
  model: PreTrainedModel,
  prompts: readonly (readonly number[])[],
  opts: GenerateOptions = {},
): AsyncGenerator<GenerationStep, void, undefined> {
  const decoder = new Decoder(model, prompts, opts);
  try {
    while (!decoder.finished) {
      yield await decoder.stepAsync();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  } finally {
    decoder.dispose();
  }
}
