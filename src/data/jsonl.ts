// Reading data files as text (UTF-8, BOM dropped, errors naming the file) and JSON Lines: one JSON
// value per line, blank lines skipped, a line that does not parse is a row error, not a fatal one.

import { readFileSync } from 'node:fs';
import { describeError } from '../io/errors.js';
import { DataError } from './errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The file's text; DataError when it cannot be read or is not UTF-8. */
export function readTextFile(file: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new DataError(`[data] ${file}: cannot read: ${describeError(e)}`, { file, cause: e });
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch (e) {
    // Say where: the first line that fails to decode.
    let line = 1;
    let lineStart = 0;
    for (let k = 0; k < bytes.length; k++) {
      if (bytes[k] !== 0x0a) continue;
      try {
        utf8.decode(bytes.subarray(lineStart, k));
      } catch {
        break;
      }
      line++;
      lineStart = k + 1;
    }
    throw new DataError(`[data] ${file}:${line}: not valid UTF-8 text`, { file, line, cause: e });
  }
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

export interface JsonLine {
  /** The parsed value (undefined when error is set). */
  value: unknown;
  line: number;
  error?: string;
}

/** Parses JSON Lines text: every non-blank line is one value; a line that fails to parse carries the reason. */
export function parseJsonLines(text: string): JsonLine[] {
  const out: JsonLine[] = [];
  let line = 0;
  let pos = 0;
  while (pos <= text.length) {
    line++;
    let end = text.indexOf('\n', pos);
    if (end < 0) end = text.length;
    const raw = text.slice(pos, end);
    pos = end + 1;
    const s = raw.trim();
    if (s === '') continue;
    try {
      out.push({ value: JSON.parse(s) as unknown, line });
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e);
      out.push({ value: undefined, line, error: `invalid JSON: ${reason}` });
    }
  }
  return out;
}

/** A plain object (not null, not an array), else null. */
export function asRecord(v: unknown): Record<string, unknown> | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
}

/** A short printable rendering of a value for an error message. */
export function show(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
