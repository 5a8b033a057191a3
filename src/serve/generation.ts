// One generated answer on the HTTP side: the engine produces token ids; here they become text as they
// come (a streaming detokenizer, so a piece that completes a multi-byte character is released whole),
// stop strings end the answer before they begin (the engine request is then cancelled, so its row leaves
// the batch), and what is streamed is exactly what the final text holds. vera's /v1/generate and the
// OpenAI routes share it.

import { createStreamDecoder } from '../io/tokenizer.js';
import { type App, tokenizerOf } from './app.js';
import type { AdapterRef, GenerateResult } from './engine/types.js';
import { isAbort } from './http.js';
import { StopStrings } from './stop.js';

export interface ChoiceRequest {
  adapter: AdapterRef;
  ids: number[];
  maxNewTokens: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  /** Stop strings: the text ends before the first one. */
  stop?: readonly string[];
  /** The client's signal: aborting it cancels the generation. */
  signal?: AbortSignal;
  /**
   * Called with each new token and the text it releases ('' while a possible stop string is held back),
   * and at the end with token null and any text still held (the pieces concatenate to the final text).
   */
  onToken?: (token: number | null, text: string) => void;
}

export interface Choice {
  text: string;
  /** The tokens generated (an EOS token included; with a stop string, those up to where it was seen). */
  tokens: number[];
  finishReason: 'stop' | 'length';
  promptTokens: number;
}

export async function runChoice(app: App, req: ChoiceRequest): Promise<Choice> {
  const tokenizer = tokenizerOf(app);
  const decoder = createStreamDecoder(tokenizer);
  const stops = new StopStrings(req.stop ?? []);
  // Our own controller: a stop string cancels the engine request, as the client going away does.
  const own = new AbortController();
  const onClientAbort = () => own.abort();
  req.signal?.addEventListener('abort', onClientAbort, { once: true });
  const tokens: number[] = [];
  let text = ''; // everything decoded so far
  let shown = 0; // chars of `text` released
  let cut = -1; // where a stop string starts in `text`
  const release = (token: number | null, upTo: number) => {
    const piece = text.slice(shown, Math.max(shown, upTo));
    shown = Math.max(shown, upTo);
    if (token !== null || piece) req.onToken?.(token, piece);
  };
  let result: GenerateResult | null = null;
  try {
    result = await app.engine.generate(
      {
        adapter: req.adapter,
        ids: req.ids,
        maxNewTokens: req.maxNewTokens,
        ...(req.temperature === undefined ? {} : { temperature: req.temperature }),
        ...(req.topP === undefined ? {} : { topP: req.topP }),
        ...(req.topK === undefined ? {} : { topK: req.topK }),
        ...(req.seed === undefined ? {} : { seed: req.seed }),
      },
      {
        signal: own.signal,
        onToken: (t) => {
          if (cut !== -1) return; // tokens the engine made before it saw the cancellation
          tokens.push(t);
          app.metrics.generationTokens.inc();
          text += decoder.push(t);
          if (!stops.empty) {
            cut = stops.find(text, shown);
            if (cut !== -1) {
              text = text.slice(0, cut);
              release(t, cut);
              own.abort();
              return;
            }
          }
          release(t, stops.empty ? text.length : stops.safeLength(text, shown));
        },
      },
    );
  } catch (e) {
    // Cancelled by a stop string: the answer is what came before it. Cancelled by the client: rethrown.
    if (!(isAbort(e) && cut !== -1 && !req.signal?.aborted)) throw e;
  } finally {
    req.signal?.removeEventListener('abort', onClientAbort);
  }
  let finishReason: Choice['finishReason'] = result?.finishReason === 'stop' ? 'stop' : 'length';
  if (cut === -1) {
    text += decoder.flush();
    cut = stops.empty ? -1 : stops.find(text, shown);
    if (cut !== -1) text = text.slice(0, cut);
  }
  if (cut !== -1) finishReason = 'stop';
  release(null, text.length);
  return { text, tokens, finishReason, promptTokens: req.ids.length };
}
