// BertNormalizer exactly as the Rust tokenizers crate runs it, replacing @huggingface/tokenizers' version,
// which lower-cases whole strings (JavaScript's toLowerCase applies the Greek final-sigma rule: "ΟΔΟΣ"
// → "οδος", Rust gives "οδοσ"), misses CJK ideographs outside the BMP, and keeps unassigned code points.

export interface BertNormalizerConfig {
  clean_text?: boolean;
  handle_chinese_chars?: boolean;
  strip_accents?: boolean | null;
  lowercase?: boolean;
}

// Rust's is_control: Cc, Cf, Cn, Co, Cs ("is_other"), except \t \n \r, which count as whitespace.
const OTHER = /[\p{Cc}\p{Cf}\p{Cn}\p{Co}\p{Cs}]/u;
const WHITE = /\p{White_Space}/u;
const NONSPACING_MARK = /\p{Mn}/gu;

/** The CJK Unified Ideographs blocks of BERT's _is_chinese_char (code points). */
function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/** BertNormalizer::normalize: clean text, pad CJK with spaces, strip accents (default: when lower-casing), lower-case per character. */
export function bertNormalize(text: string, cfg: BertNormalizerConfig): string {
  let out = '';
  for (const c of text) {
    const cp = c.codePointAt(0)!;
    if (cfg.clean_text) {
      if (cp === 0 || cp === 0xfffd) continue;
      const tabOrNewline = c === '\t' || c === '\n' || c === '\r';
      // Controls go first, so a control that is also White_Space (\v, \f, U+0085) is dropped.
      if (!tabOrNewline && OTHER.test(c)) continue;
      if (tabOrNewline || WHITE.test(c)) {
        out += ' ';
        continue;
      }
    }
    out += cfg.handle_chinese_chars && isChineseChar(cp) ? ` ${c} ` : c;
  }
  const lowercase = cfg.lowercase ?? true;
  if (cfg.strip_accents ?? lowercase) out = out.normalize('NFD').replace(NONSPACING_MARK, '');
  if (lowercase) {
    let lower = '';
    for (const c of out) lower += c.toLowerCase();
    out = lower;
  }
  return out;
}

/**
 * Makes an @huggingface/tokenizers Tokenizer use bertNormalize when its normalizer is a BertNormalizer.
 * The library calls `normalizer(text)` (a callable object whose _call is `this.normalize(text)`) on each
 * text section between added tokens.
 */
export function patchBertNormalizer(hf: { normalizer: unknown }, normalizerJson: unknown): void {
  if (normalizerJson === null || typeof normalizerJson !== 'object') return;
  const cfg = normalizerJson as BertNormalizerConfig & { type?: string };
  if (cfg.type !== 'BertNormalizer' || hf.normalizer === null || hf.normalizer === undefined) return;
  (hf.normalizer as { normalize: (t: string) => string }).normalize = (t: string) => bertNormalize(t, cfg);
}
