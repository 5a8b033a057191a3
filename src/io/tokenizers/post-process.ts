// tokenizer.json's post-processor (special tokens and token type ids around one or two sequences) and
// the Rust tokenizers' truncation rules, applied to token ids. Done here rather than in
// @huggingface/tokenizers because truncation must run before the special tokens are added (reserving
// room for them), and that library drops the second sequence of a pair under a ByteLevel post-processor.

/** Ids with their token type ids. */
export interface Sequence {
  ids: number[];
  typeIds: number[];
}

type Piece = { kind: 'special'; ids: number[]; typeId: number } | { kind: 'seq'; which: 0 | 1; typeId: number };

/** A post-processor reduced to two templates (single, pair) over ids. */
export class PostProcessor {
  constructor(
    private readonly single: Piece[],
    private readonly pair: Piece[],
  ) {}

  /**
   * From a tokenizer.json `post_processor` value. Supported: TemplateProcessing, BertProcessing,
   * RobertaProcessing, ByteLevel (adds nothing), Sequence of these, and null (A, then B with type id 1).
   */
  static fromJson(pp: unknown, where: string): PostProcessor {
    const t = findTemplate(pp, where);
    return t ?? new PostProcessor([seqPiece(0, 0)], [seqPiece(0, 0), seqPiece(1, 1)]);
  }

  /** Applies the template: ids of the first (and second) sequence → ids and type ids. */
  process(a: number[], b: number[] | null, addSpecialTokens: boolean): Sequence {
    const ids: number[] = [];
    const typeIds: number[] = [];
    for (const piece of b === null ? this.single : this.pair) {
      if (piece.kind === 'special') {
        if (!addSpecialTokens) continue;
        for (const id of piece.ids) {
          ids.push(id);
          typeIds.push(piece.typeId);
        }
      } else {
        const src = piece.which === 0 ? a : b;
        if (src === null) continue;
        for (const id of src) {
          ids.push(id);
          typeIds.push(piece.typeId);
        }
      }
    }
    return { ids, typeIds };
  }

  /** How many ids the special tokens add to a single sequence or a pair. */
  numSpecialTokens(isPair: boolean): number {
    let n = 0;
    for (const piece of isPair ? this.pair : this.single) if (piece.kind === 'special') n += piece.ids.length;
    return n;
  }
}

function seqPiece(which: 0 | 1, typeId: number): Piece {
  return { kind: 'seq', which, typeId };
}

function findTemplate(pp: unknown, where: string): PostProcessor | null {
  if (pp === null || pp === undefined) return null;
  if (typeof pp !== 'object') throw new Error(`[tokenizer] ${where}: post_processor must be an object`);
  const o = pp as Record<string, unknown>;
  switch (o['type']) {
    case 'ByteLevel':
      return null;
    case 'Sequence': {
      // Llama-3.1 style: [ByteLevel, TemplateProcessing]. Only one member may add tokens.
      const list = (o['processors'] ?? o['processor'] ?? []) as unknown[];
      let found: PostProcessor | null = null;
      for (const p of list) {
        const t = findTemplate(p, where);
        if (t !== null) {
          if (found !== null)
            throw new Error(`[tokenizer] ${where}: a Sequence post_processor with two templates is not supported`);
          found = t;
        }
      }
      return found;
    }
    case 'TemplateProcessing':
      return fromTemplate(o, where);
    case 'BertProcessing': {
      const [cls, sep] = [pair(o['cls'], 'cls', where), pair(o['sep'], 'sep', where)];
      const s = (id: number, typeId: number): Piece => ({ kind: 'special', ids: [id], typeId });
      return new PostProcessor(
        [s(cls, 0), seqPiece(0, 0), s(sep, 0)],
        [s(cls, 0), seqPiece(0, 0), s(sep, 0), seqPiece(1, 1), s(sep, 1)],
      );
    }
    case 'RobertaProcessing': {
      // RoBERTa has no token types: every type id is 0. Pairs read <s> A </s></s> B </s>.
      const [cls, sep] = [pair(o['cls'], 'cls', where), pair(o['sep'], 'sep', where)];
      const s = (id: number): Piece => ({ kind: 'special', ids: [id], typeId: 0 });
      return new PostProcessor(
        [s(cls), seqPiece(0, 0), s(sep)],
        [s(cls), seqPiece(0, 0), s(sep), s(sep), seqPiece(1, 0), s(sep)],
      );
    }
    default:
      throw new Error(`[tokenizer] ${where}: post_processor type ${JSON.stringify(o['type'])} is not supported`);
  }
}

/** [token, id] of BertProcessing / RobertaProcessing. */
function pair(v: unknown, field: string, where: string): number {
  if (!Array.isArray(v) || typeof v[1] !== 'number') {
    throw new Error(`[tokenizer] ${where}: post_processor.${field} must be [token, id]`);
  }
  return v[1];
}

function fromTemplate(o: Record<string, unknown>, where: string): PostProcessor {
  const specials = (o['special_tokens'] ?? {}) as Record<string, { ids?: unknown }>;
  const parse = (list: unknown, name: string): Piece[] => {
    if (!Array.isArray(list)) throw new Error(`[tokenizer] ${where}: post_processor.${name} must be a list`);
    return list.map((item: Record<string, { id: string; type_id?: number }>) => {
      if (item['SpecialToken']) {
        const { id, type_id } = item['SpecialToken'];
        const ids = specials[id]?.ids;
        if (!Array.isArray(ids)) {
          throw new Error(
            `[tokenizer] ${where}: post_processor.${name} uses special token ${JSON.stringify(id)}, missing from special_tokens`,
          );
        }
        return { kind: 'special', ids: ids as number[], typeId: type_id ?? 0 };
      }
      if (item['Sequence']) {
        const { id, type_id } = item['Sequence'];
        return seqPiece(id === 'B' ? 1 : 0, type_id ?? 0);
      }
      throw new Error(
        `[tokenizer] ${where}: post_processor.${name} has an item that is neither SpecialToken nor Sequence`,
      );
    });
  };
  return new PostProcessor(parse(o['single'], 'single'), parse(o['pair'], 'pair'));
}

/**
 * Rust tokenizers' truncate_encodings: cut `a` (and `b`) so their total is at most `maxLength`
 * (special tokens already subtracted). 'longest_first' on a pair keeps the shorter sequence whole
 * when it can and otherwise halves the budget, the longer getting the odd one; `side` says which end
 * loses tokens.
 */
export function truncate(
  a: number[],
  b: number[] | null,
  maxLength: number,
  side: 'left' | 'right',
): [number[], number[] | null] {
  const cut = (x: number[], n: number) =>
    x.length <= n ? x : side === 'right' ? x.slice(0, n) : x.slice(x.length - n);
  const total = a.length + (b?.length ?? 0);
  if (total <= maxLength) return [a, b];
  if (b === null) return [cut(a, maxLength), null];
  // n1 is the shorter sequence's length; swap says whether that is b.
  const swap = a.length > b.length;
  let n1 = Math.min(a.length, b.length);
  let n2 = n1 > maxLength ? n1 : Math.max(n1, maxLength - n1);
  if (n1 + n2 > maxLength) {
    n1 = Math.floor(maxLength / 2);
    n2 = n1 + (maxLength % 2);
  }
  if (swap) [n1, n2] = [n2, n1];
  return [cut(a, n1), cut(b, n2)];
}
