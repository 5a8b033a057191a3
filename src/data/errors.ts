// DataError: a data file (or one row of it) cannot be used for training. It names the file and, for
// row errors, the 1-based line, so "train.csv:17: label "maybe" is not one of …" points at the fix.

import { IoError } from '../io/errors.js';

export class DataError extends IoError {
  override name = 'DataError';
  /** The 1-based line (CSV/TSV/JSONL record start), when the error concerns one row. */
  readonly line?: number;

  constructor(message: string, details: { file: string; line?: number; key?: string; cause?: unknown }) {
    super(message, { file: details.file, key: details.key, cause: details.cause });
    if (details.line !== undefined) this.line = details.line;
  }
}

/** "file:line" (or the file alone), the prefix of row messages and of Example.source. */
export function where(file: string, line?: number): string {
  return line === undefined ? file : `${file}:${line}`;
}

/**
 * Applies the onBadRow policy: 'error' throws a DataError for the first bad row, 'skip' counts it. Loaders
 * call bad() for every malformed row and read `skipped` at the end.
 */
export class RowPolicy {
  skipped = 0;

  constructor(
    readonly file: string,
    readonly onBadRow: 'error' | 'skip' = 'error',
  ) {}

  /** Reports a bad row (or file, for image folders): throws (policy 'error') or counts it (policy 'skip'). */
  bad(line: number | undefined, message: string, file = this.file, cause?: unknown): void {
    if (this.onBadRow === 'skip') {
      this.skipped++;
      return;
    }
    throw new DataError(`[data] ${where(file, line)}: ${message} (onBadRow 'skip' skips such rows)`, {
      file,
      ...(line === undefined ? {} : { line }),
      ...(cause === undefined ? {} : { cause }),
    });
  }
}
