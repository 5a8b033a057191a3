// Stop strings over a growing decoded text (OpenAI's `stop`): the answer ends before the first stop
// string, and while it grows only the part that no later token can turn into the start of a stop string
// is released, so a streamed answer never shows text that the final one leaves out. (The same rules as
// `vera generate --stop`, whose helper lives in the command line, which serve may not import.)

export class StopStrings {
  readonly #stops: readonly string[];
  readonly #longest: number;

  constructor(stops: readonly string[]) {
    this.#stops = stops;
    this.#longest = Math.max(0, ...stops.map((s) => s.length));
  }

  get empty(): boolean {
    return this.#stops.length === 0;
  }

  /** Index of the earliest stop string in `text` starting at or after `from`, or -1. */
  find(text: string, from: number): number {
    let best = -1;
    for (const s of this.#stops) {
      const i = text.indexOf(s, from);
      if (i !== -1 && (best === -1 || i < best)) best = i;
    }
    return best;
  }

  /**
   * Length of the prefix of `text` that no later text can turn into part of a stop string. Text before
   * `from` was released already (and so starts no stop string).
   */
  safeLength(text: string, from: number): number {
    for (let k = Math.min(this.#longest - 1, text.length - from); k > 0; k--) {
      const tail = text.slice(text.length - k);
      if (this.#stops.some((s) => s.startsWith(tail))) return text.length - k;
    }
    return text.length;
  }
}
