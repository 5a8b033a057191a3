// An RFC 4180 CSV/TSV parser: quoted fields may hold delimiters, newlines and doubled quotes; CRLF, LF
// and lone CR end records; a leading BOM is dropped. Every record carries the line it starts on.

export interface CsvRecord {
  fields: string[];
  /** 1-based line the record starts on (quoted newlines make records span lines). */
  line: number;
  /** Set when the record is malformed but parsing could continue (text after a closing quote). */
  error?: string;
}

/** A syntax error that ends parsing: a quoted field that never closes. */
export class CsvSyntaxError extends Error {
  override name = 'CsvSyntaxError';
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(message);
  }
}

const QUOTE = 0x22;
const CR = 0x0d;
const LF = 0x0a;

/**
 * Splits `text` into records. Choices where RFC 4180 is silent or strict, following Python's csv module:
 * a quote inside an unquoted field is literal (TSV files often hold bare quotes); blank lines (empty or
 * whitespace only) are skipped. Text between a closing quote and the next delimiter is a row error
 * (Python would silently glue it on). An unterminated quoted field throws CsvSyntaxError naming the
 * line the field starts on, since the rest of the file would be swallowed into it.
 */
export function parseDelimited(text: string, delimiter: string): CsvRecord[] {
  if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n' || delimiter === '\r')
    throw new RangeError(
      `[csv] delimiter must be one character other than a quote or newline, got ${JSON.stringify(delimiter)}`,
    );
  const delim = delimiter.charCodeAt(0);
  const n = text.length;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  const out: CsvRecord[] = [];

  /** Consumes a line break at i (CRLF, LF or CR), if there is one. */
  const newline = (): void => {
    const c = text.charCodeAt(i);
    if (c === CR) i += text.charCodeAt(i + 1) === LF ? 2 : 1;
    else if (c === LF) i++;
    else return;
    line++;
  };

  while (i < n) {
    const start = line;
    const fields: string[] = [];
    let error: string | undefined;
    let quoted = false;
    for (;;) {
      if (text.charCodeAt(i) === QUOTE) {
        quoted = true;
        i++;
        const opened = line;
        let value = '';
        for (;;) {
          const j = text.indexOf('"', i);
          if (j < 0) throw new CsvSyntaxError(`a quoted field opened on line ${opened} never closes`, opened);
          const part = text.slice(i, j);
          value += part;
          line += countLineBreaks(part);
          if (text.charCodeAt(j + 1) === QUOTE) {
            value += '"';
            i = j + 2;
          } else {
            i = j + 1;
            break;
          }
        }
        // After the closing quote only a delimiter, a line break or the end may follow.
        const after = i;
        while (i < n) {
          const c = text.charCodeAt(i);
          if (c === delim || c === CR || c === LF) break;
          i++;
        }
        if (i > after && error === undefined)
          error = `text ${JSON.stringify(text.slice(after, Math.min(i, after + 20)))} after a closing quote (a field that starts with " must be quoted whole, with inner quotes doubled)`;
        fields.push(value);
      } else {
        const from = i;
        while (i < n) {
          const c = text.charCodeAt(i);
          if (c === delim || c === CR || c === LF) break;
          i++;
        }
        fields.push(text.slice(from, i));
      }
      if (i < n && text.charCodeAt(i) === delim) {
        i++;
        continue;
      }
      newline();
      break;
    }
    // A blank line (but `""` alone is a record with one empty field).
    if (fields.length === 1 && !quoted && fields[0]!.trim() === '') continue;
    out.push(error === undefined ? { fields, line: start } : { fields, line: start, error });
  }
  return out;
}

/** Line breaks in s: CRLF, LF and lone CR each count once. */
function countLineBreaks(s: string): number {
  let count = 0;
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c === LF) count++;
    else if (c === CR && s.charCodeAt(k + 1) !== LF) count++;
  }
  return count;
}

/** Header name (trimmed) → column index; the first of duplicate names wins. */
export function headerIndex(header: readonly string[]): Map<string, number> {
  const m = new Map<string, number>();
  header.forEach((h, k) => {
    const name = h.trim();
    if (!m.has(name)) m.set(name, k);
  });
  return m;
}
