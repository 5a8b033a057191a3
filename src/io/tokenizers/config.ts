// Reading tokenizer_config.json / special_tokens_map.json values as transformers does: special tokens
// may be written as strings or as AddedToken objects ({"content": ..., "__type": "AddedToken"}).

/** tokenizer_config.json merged with special_tokens_map.json (the latter wins, as in transformers). */
export type TokenizerConfig = Record<string, unknown>;

/** The special-token attributes transformers knows (`SPECIAL_TOKENS_ATTRIBUTES`), in its order. */
export const SPECIAL_TOKEN_KEYS = [
  'bos_token',
  'eos_token',
  'unk_token',
  'sep_token',
  'pad_token',
  'cls_token',
  'mask_token',
] as const;
export type SpecialTokenKey = (typeof SPECIAL_TOKEN_KEYS)[number];

/** A token value as a string: a plain string, an AddedToken-like object's `content`, else null. */
export function tokenString(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return null;
}

/** The special token named `key` in the config (e.g. 'eos_token'), or null when unset. */
export function specialToken(config: TokenizerConfig, key: SpecialTokenKey): string | null {
  return tokenString(config[key]);
}

/** `additional_special_tokens` as strings (entries that are neither strings nor AddedTokens are skipped). */
export function additionalSpecialTokens(config: TokenizerConfig): string[] {
  const v = config['additional_special_tokens'];
  if (!Array.isArray(v)) return [];
  return v.map(tokenString).filter((s): s is string => s !== null);
}

/** A boolean field, or `fallback` when absent or not a boolean. */
export function boolField(config: TokenizerConfig, key: string, fallback: boolean): boolean {
  const v = config[key];
  return typeof v === 'boolean' ? v : fallback;
}

/**
 * transformers' model_max_length, or null when the config leaves it unset or at its "unbounded" value
 * (VERY_LARGE_INTEGER = int(1e30), which JSON stores as 1e30).
 */
export function modelMaxLength(config: TokenizerConfig): number | null {
  const v = config['model_max_length'];
  return typeof v === 'number' && Number.isInteger(v) && v > 0 && v < 1e9 ? v : null;
}

/** Merges special_tokens_map.json into tokenizer_config.json: the map's entries override, as in transformers. */
export function mergeSpecialTokensMap(config: TokenizerConfig, map: TokenizerConfig | null): TokenizerConfig {
  if (map === null) return { ...config };
  const out: TokenizerConfig = { ...config };
  for (const [k, v] of Object.entries(map)) if (v !== null && v !== undefined) out[k] = v;
  return out;
}
