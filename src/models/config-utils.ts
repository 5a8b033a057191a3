// Reading fields of a Hugging Face config.json with validation and defaults: every error names the
// model type and the field, e.g. `[config] llama: field "hidden_size" must be a positive integer, got "32"`.

/** A parsed config.json object, kept as read so that saving writes it back unchanged. */
export type HFConfig = Record<string, unknown>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** `json` as a config object, or a ConfigError naming `source`. */
export function asConfigObject(json: unknown, source: string): HFConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new ConfigError(`[config] ${source}: expected a JSON object, got ${describe(json)}`);
  return json as HFConfig;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'string' ? JSON.stringify(v) : typeof v === 'object' ? 'an object' : String(v);
}

/** Typed, validated access to one config object (or a nested one such as rope_parameters). */
export class ConfigReader {
  constructor(
    readonly raw: HFConfig,
    /** What the errors name: the model type, or "llama rope_parameters". */
    readonly what: string,
  ) {}

  fail(field: string, msg: string): never {
    throw new ConfigError(`[config] ${this.what}: field "${field}" ${msg}`);
  }

  /** True when the field is present and not null. */
  has(field: string): boolean {
    return this.raw[field] !== undefined && this.raw[field] !== null;
  }

  #get(field: string, def: unknown): unknown {
    const v = this.raw[field];
    if (v === undefined || v === null) {
      if (def === undefined) this.fail(field, 'is required');
      return def;
    }
    return v;
  }

  num(field: string, def?: number): number {
    const v = this.#get(field, def);
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(field, `must be a number, got ${describe(v)}`);
    return v;
  }

  /** A number > 0 (> min when given). */
  positive(field: string, def?: number): number {
    const v = this.num(field, def);
    if (!(v > 0)) this.fail(field, `must be > 0, got ${v}`);
    return v;
  }

  /** An integer ≥ min (default 1). */
  int(field: string, def?: number, min = 1): number {
    const v = this.#get(field, def);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
      this.fail(field, `must be an integer ≥ ${min}, got ${describe(v)}`);
    return v;
  }

  /** An integer, or null when absent (token ids, window sizes). */
  optInt(field: string, min = 0): number | null {
    return this.has(field) ? this.int(field, undefined, min) : null;
  }

  /** A probability in [0, 1). */
  prob(field: string, def = 0): number {
    const v = this.num(field, def);
    if (!(v >= 0 && v < 1)) this.fail(field, `must be in [0, 1), got ${v}`);
    return v;
  }

  bool(field: string, def?: boolean): boolean {
    const v = this.#get(field, def);
    if (typeof v !== 'boolean') this.fail(field, `must be true or false, got ${describe(v)}`);
    return v;
  }

  str(field: string, def?: string): string {
    const v = this.#get(field, def);
    if (typeof v !== 'string') this.fail(field, `must be a string, got ${describe(v)}`);
    return v;
  }

  /** A nested object, or null when absent. */
  object(field: string): HFConfig | null {
    if (!this.has(field)) return null;
    const v = this.raw[field];
    if (typeof v !== 'object' || Array.isArray(v)) this.fail(field, `must be an object, got ${describe(v)}`);
    return v as HFConfig;
  }

  /** An array of strings, or null when absent. */
  strings(field: string): string[] | null {
    if (!this.has(field)) return null;
    const v = this.raw[field];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
      this.fail(field, `must be an array of strings, got ${describe(v)}`);
    return v as string[];
  }

  /** Token ids given as one integer or a list (eos_token_id), [] when absent. */
  ids(field: string): number[] {
    if (!this.has(field)) return [];
    const v = this.raw[field];
    const list = Array.isArray(v) ? v : [v];
    if (list.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x < 0))
      this.fail(field, `must be a token id or a list of token ids, got ${JSON.stringify(v)}`);
    return list as number[];
  }

  /** Labels of a classification head: num_labels, else the size of id2label, else 2 (transformers' default). */
  numLabels(): number {
    if (this.has('num_labels')) return this.int('num_labels');
    const map = this.object('id2label');
    if (map) {
      const n = Object.keys(map).length;
      if (n === 0) this.fail('id2label', 'must not be empty');
      return n;
    }
    return 2;
  }
}
