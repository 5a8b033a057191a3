// Reading JSON files (config.json, adapter_config.json, safetensors index files) with errors that
// name the file and the line and column of a syntax error.

import { readFileSync } from 'node:fs';
import { IoError, describeError } from './errors.js';
import { jsonSyntaxErrorOffset } from './json-syntax.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses the JSON file at `path` (UTF-8, a leading byte-order mark allowed). Throws IoError naming the file. */
export function readJsonFile(path: string): unknown {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new IoError(`[json] ${path}: cannot read: ${describeError(e)}`, { file: path, cause: e });
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch (e) {
    throw new IoError(`[json] ${path}: not valid UTF-8 text`, { file: path, cause: e });
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return parseJsonText(text, path, 'json');
}

/** JSON.parse with an IoError that names `file` and the line, column and offset of a syntax error. */
export function parseJsonText(text: string, file: string, tag: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const found = jsonSyntaxErrorOffset(text);
    const pos = found >= 0 ? found : jsonErrorPosition(e, text);
    const { line, column } = lineColumn(text, pos);
    const reason = printable(e instanceof Error ? e.message : String(e));
    throw new IoError(`[${tag}] ${file}: invalid JSON at line ${line}, column ${column} (offset ${pos}): ${reason}`, {
      file,
      cause: e,
    });
  }
}

/** The character offset V8 reports in a JSON.parse error ("... at position 12"), or the end of the text. */
export function jsonErrorPosition(e: unknown, text: string): number {
  const m = e instanceof Error ? /at position (\d+)/.exec(e.message) : null;
  return m ? Math.min(Number(m[1]), text.length) : text.length;
}

/** 1-based line and column of a character offset. */
export function lineColumn(text: string, pos: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < pos; i = text.indexOf('\n', i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, column: pos - start + 1 };
}

/** V8 quotes the text around a JSON error, which may hold control characters: shows them as \xNN. */
function printable(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    out += c < 0x20 || c === 0x7f ? `\\x${c.toString(16).padStart(2, '0')}` : ch;
  }
  return out;
}
