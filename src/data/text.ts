// Text datasets: sequence classification and regression from CSV/TSV/JSONL (columns or keys, label
// mapping, sentence pairs, truncation, bad-row policy), and plain text packed into blocks for causal LM.
// Everything is tokenized once, at load.

import { extname } from 'node:path';
import type { Tokenizer } from '../io/tokenizer.js';
import { didYouMean } from '../io/suggest.js';
import { CsvSyntaxError, headerIndex, parseDelimited } from './csv.js';
import { DataError, RowPolicy, where } from './errors.js';
import { type Dataset, Ragged, TokenDataset } from './example.js';
import { asRecord, parseJsonLines, readTextFile, show } from './jsonl.js';
import { packDocuments } from './pack.js';
import { rawIdsLong, specialPrefix } from './tokens.js';

export type TableFormat = 'csv' | 'tsv' | 'jsonl';

export interface TextClassificationOpts {
  tokenizer: Tokenizer;
  /** Column (CSV/TSV header name) or key (JSONL) of the text. */
  textColumn: string;
  /** Column of the second sentence of a pair (BERT-style; gives token type ids). */
  pairColumn?: string;
  labelColumn: string;
  /** Labels are numbers to regress on (kind 'regression') rather than classes. */
  regression?: boolean;
  /**
   * Class names in class-id order. Labels matching a name map to its index; integer labels are class
   * ids. When not given: integer labels are class ids (names "0".."max"), anything else maps through
   * the sorted unique label strings.
   */
  labelNames?: string[];
  /** Truncate to this many tokens, the tokenizer's special tokens included (default: model_max_length). */
  maxLength?: number;
  /** Default: from the extension (.csv, .tsv/.tab, .jsonl/.ndjson). */
  format?: TableFormat;
  onBadRow?: 'error' | 'skip';
}

/** One row as read: its line and a lookup of column/key values, or why the row is malformed. */
type Row = { line: number; get(key: string): unknown } | { line: number; error: string };

/**
 * Reads the rows of a CSV/TSV (header row names the columns) or JSONL file, in file order. A missing
 * column is fatal (DataError listing the header); malformed rows come back with their error, for the
 * caller to report in line order.
 */
function readRows(file: string, format: TableFormat, required: string[]): Row[] {
  const text = readTextFile(file);
  const rows: Row[] = [];
  if (format === 'jsonl') {
    for (const r of parseJsonLines(text)) {
      if (r.error !== undefined) {
        rows.push({ line: r.line, error: r.error });
        continue;
      }
      const obj = asRecord(r.value);
      if (obj === null) {
        rows.push({ line: r.line, error: `expected a JSON object, got ${show(r.value)}` });
        continue;
      }
      const missing = required.find((k) => !(k in obj));
      if (missing !== undefined) {
        const keys = Object.keys(obj);
        const error = `no key "${missing}"${didYouMean(missing, keys)} (keys: ${keys.map((k) => JSON.stringify(k)).join(', ')})`;
        rows.push({ line: r.line, error });
        continue;
      }
      rows.push({ line: r.line, get: (k) => obj[k] });
    }
    return rows;
  }
  let records;
  try {
    records = parseDelimited(text, format === 'tsv' ? '\t' : ',');
  } catch (e) {
    if (e instanceof CsvSyntaxError)
      throw new DataError(`[data] ${where(file, e.line)}: ${e.message}`, { file, line: e.line, cause: e });
    throw e;
  }
  if (records.length === 0) throw new DataError(`[data] ${file}: empty file (expected a header row)`, { file });
  const header = records[0]!;
  if (header.error !== undefined)
    throw new DataError(`[data] ${where(file, header.line)}: header row: ${header.error}`, { file, line: header.line });
  const cols = headerIndex(header.fields);
  for (const name of required) {
    if (!cols.has(name)) {
      const names = [...cols.keys()];
      throw new DataError(
        `[data] ${where(file, header.line)}: no column "${name}"${didYouMean(name, names)}; the header has ${names.map((h) => JSON.stringify(h)).join(', ')}`,
        { file, line: header.line, key: name },
      );
    }
  }
  const width = header.fields.length;
  for (let r = 1; r < records.length; r++) {
    const rec = records[r]!;
    if (rec.error !== undefined) {
      rows.push({ line: rec.line, error: rec.error });
      continue;
    }
    if (rec.fields.length !== width) {
      const error = `${rec.fields.length} field${rec.fields.length === 1 ? '' : 's'}, the header has ${width} (an unquoted ${format === 'tsv' ? 'tab' : 'comma'} in a text?)`;
      rows.push({ line: rec.line, error });
      continue;
    }
    const fields = rec.fields;
    rows.push({ line: rec.line, get: (k) => fields[cols.get(k)!] });
  }
  return rows;
}

/** The format for `file`: the given one, else from the extension; DataError when neither says. */
export function tableFormat(file: string, given?: TableFormat): TableFormat {
  if (given !== undefined) {
    if (given !== 'csv' && given !== 'tsv' && given !== 'jsonl')
      throw new DataError(`[data] ${file}: format must be 'csv', 'tsv' or 'jsonl', got ${show(given)}`, { file });
    return given;
  }
  const ext = extname(file).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.tsv' || ext === '.tab') return 'tsv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  throw new DataError(
    `[data] ${file}: cannot tell the format from the extension "${ext}"; pass format 'csv', 'tsv' or 'jsonl'`,
    { file },
  );
}

/** A text cell: a non-empty string (after trimming), else the reason it is not. */
function textCell(v: unknown, key: string): string | { error: string } {
  if (typeof v !== 'string') return { error: `"${key}" must be a string, got ${show(v)}` };
  if (v.trim() === '') return { error: `empty text in "${key}"` };
  return v;
}

/** A label cell as a trimmed string, or the reason it is unusable. */
function labelCell(v: unknown, key: string): string | { error: string } {
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : { error: `label ${show(v)} is not finite` };
  if (typeof v === 'boolean') return String(v);
  if (typeof v !== 'string') return { error: `"${key}" must be a string or number, got ${show(v)}` };
  const s = v.trim();
  return s === '' ? { error: `empty label in "${key}"` } : s;
}

const INTEGER = /^[+-]?\d+$/;

/**
 * Loads a text classification (or regression) dataset. Each row's text (and pair) is tokenized once with
 * tokenizer.encodeBatch (truncation to maxLength, the special tokens kept; pairs truncated longest-first
 * and given token type ids). Malformed rows — wrong field count, empty text, a label not in labelNames,
 * a non-numeric regression value, a bad JSON line — throw a DataError naming file and line, or with
 * onBadRow 'skip' are dropped and counted in `skipped`.
 */
export function loadTextClassification(file: string, opts: TextClassificationOpts): Dataset {
  const format = tableFormat(file, opts.format);
  if (opts.maxLength !== undefined && (!Number.isInteger(opts.maxLength) || opts.maxLength < 1))
    throw new RangeError(`[data] maxLength must be a positive integer, got ${opts.maxLength}`);
  if (opts.regression && opts.labelNames !== undefined)
    throw new RangeError('[data] labelNames are for classification; regression labels are numbers');
  const policy = new RowPolicy(file, opts.onBadRow);
  const { textColumn, pairColumn, labelColumn } = opts;
  const required = [textColumn, ...(pairColumn === undefined ? [] : [pairColumn]), labelColumn];
  const rows = readRows(file, format, required);

  // A label string → class id or value, or the reason it is unusable. Inferred mappings (no labelNames)
  // are only known once every row is read, and then every label fits them.
  let toLabel: ((s: string) => number | string) | null = null;
  let labelNames: string[] | undefined;
  if (opts.regression) {
    toLabel = (s) => {
      const v = Number(s);
      return Number.isFinite(v) ? v : `regression label ${JSON.stringify(s)} is not a number`;
    };
  } else if (opts.labelNames !== undefined) {
    const names = opts.labelNames;
    if (names.length === 0) throw new RangeError('[data] labelNames is empty');
    const index = new Map(names.map((n, k) => [n, k]));
    if (index.size !== names.length) throw new RangeError(`[data] labelNames has duplicates: ${show(names)}`);
    labelNames = [...names];
    toLabel = (s) => {
      const k = index.get(s);
      if (k !== undefined) return k;
      if (INTEGER.test(s) && Number(s) >= 0 && Number(s) < names.length) return Number(s);
      return `label ${JSON.stringify(s)} is not one of labelNames ${show(names)} (nor a class id 0..${names.length - 1})`;
    };
  }

  // Rows in file order, so that with onBadRow 'error' the first bad line is the one reported.
  const good: { line: number; text: string; pair?: string; label: string }[] = [];
  for (const row of rows) {
    if ('error' in row) {
      policy.bad(row.line, row.error);
      continue;
    }
    const text = textCell(row.get(textColumn), textColumn);
    if (typeof text !== 'string') {
      policy.bad(row.line, text.error);
      continue;
    }
    let pair: string | undefined;
    if (pairColumn !== undefined) {
      const p = textCell(row.get(pairColumn), pairColumn);
      if (typeof p !== 'string') {
        policy.bad(row.line, p.error);
        continue;
      }
      pair = p;
    }
    const label = labelCell(row.get(labelColumn), labelColumn);
    if (typeof label !== 'string') {
      policy.bad(row.line, label.error);
      continue;
    }
    const mapped = toLabel?.(label);
    if (typeof mapped === 'string') {
      policy.bad(row.line, mapped);
      continue;
    }
    good.push({ line: row.line, text, label, ...(pair === undefined ? {} : { pair }) });
  }
  if (toLabel === null) {
    if (good.every((g) => INTEGER.test(g.label) && Number(g.label) >= 0)) {
      // Class ids as given; names "0".."max" so that the class count is known.
      let max = -1;
      for (const g of good) max = Math.max(max, Number(g.label));
      labelNames = Array.from({ length: max + 1 }, (_, k) => String(k));
      toLabel = Number;
    } else {
      const names = [...new Set(good.map((g) => g.label))].sort();
      const index = new Map(names.map((n, k) => [n, k]));
      labelNames = names;
      toLabel = (s) => index.get(s)!;
    }
  }

  // Tokenize in batches (one encodeBatch call per 256 rows).
  const inputIds = new Ragged();
  const tokenTypeIds = pairColumn === undefined ? undefined : new Ragged();
  const labels: number[] = [];
  const sources: string[] = [];
  const batch = 256;
  for (let s = 0; s < good.length; s += batch) {
    const part = good.slice(s, s + batch);
    const enc = opts.tokenizer.encodeBatch(
      part.map((g) => g.text),
      {
        truncation: true,
        ...(opts.maxLength === undefined ? {} : { maxLength: opts.maxLength }),
        ...(pairColumn === undefined ? {} : { pairs: part.map((g) => g.pair!) }),
      },
    );
    part.forEach((g, k) => {
      inputIds.push(enc.ids[k]!);
      tokenTypeIds?.push(enc.tokenTypeIds[k]!);
      labels.push(toLabel(g.label) as number);
      sources.push(where(file, g.line));
    });
  }
  if (inputIds.rows === 0)
    throw new DataError(
      `[data] ${file}: no usable rows${policy.skipped > 0 ? ` (${policy.skipped} malformed rows skipped)` : ''}`,
      { file },
    );
  return new TokenDataset({
    kind: opts.regression ? 'regression' : 'classification',
    inputIds,
    ...(tokenTypeIds ? { tokenTypeIds } : {}),
    label: opts.regression ? Float64Array.from(labels) : Int32Array.from(labels),
    sources,
    ...(labelNames === undefined ? {} : { labelNames }),
    skipped: policy.skipped,
  });
}

export interface CausalTextOpts {
  tokenizer: Tokenizer;
  /** Tokens per example. */
  blockSize: number;
  /** Put the tokenizer's EOS after each file (default true). */
  addEos?: boolean;
}

/**
 * Plain text files for causal LM training. Each file is one document: the tokenizer's special prefix
 * (BOS where its post-processor adds one), the text's tokens, then EOS (addEos). Documents are
 * concatenated and cut into blocks of blockSize (see packSequences; the short tail is dropped); labels
 * equal the inputs.
 */
export function loadCausalText(files: string[], opts: CausalTextOpts): Dataset {
  if (files.length === 0) throw new RangeError('[data] loadCausalText: no files given');
  const tok = opts.tokenizer;
  const addEos = opts.addEos ?? true;
  if (addEos && tok.eosTokenId === null)
    throw new DataError(
      `[data] ${files[0]}: the tokenizer (${tok.source}) has no eos_token to end documents with; pass addEos: false`,
      { file: files[0]! },
    );
  const prefix = specialPrefix(tok);
  const docs = files.map((file) => {
    const text = readTextFile(file);
    const body = rawIdsLong(tok, text);
    return { ids: body.length === 0 ? [] : [...prefix, ...body], labels: null, source: file };
  });
  try {
    return packDocuments(docs, opts.blockSize, addEos ? tok.eosTokenId : null, addEos);
  } catch (e) {
    if (e instanceof RangeError) throw e;
    const what = files.length === 1 ? files[0]! : `${files[0]} (and ${files.length - 1} more)`;
    throw new DataError(`[data] ${what}: ${e instanceof Error ? e.message.replace(/^\[data\] /, '') : String(e)}`, {
      file: files[0]!,
      cause: e,
    });
  }
}
