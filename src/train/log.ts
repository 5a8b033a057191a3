// output_dir/metrics.jsonl: one JSON object per logged training step, evaluation or event, appended as
// the run goes. A resumed run first drops the records after its checkpoint (and a line torn by a kill),
// so the file reads as one uninterrupted run.

import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../io/atomic.js';

/** A training-step record ('train'), an evaluation ('eval') or an event ('event': resume, diverged, …). */
export interface LogRecord {
  type: 'train' | 'eval' | 'event';
  step: number;
  [key: string]: string | number | boolean | null;
}

export class MetricsLog {
  readonly records: LogRecord[];

  /**
   * Opens `file`, keeping the records of steps ≤ keepUpTo (null: none, a fresh run). The kept part is
   * rewritten atomically, so a kill during the rewrite leaves the old file.
   */
  constructor(
    readonly file: string,
    keepUpTo: number | null,
  ) {
    this.records = keepUpTo === null ? [] : readRecords(file).filter((r) => r.step <= keepUpTo);
    writeFileAtomic(file, this.records.map((r) => `${JSON.stringify(r)}\n`).join(''));
  }

  append(record: LogRecord): void {
    this.records.push(record);
    appendFileSync(this.file, `${JSON.stringify(record, (_k, v: unknown) => finite(v))}\n`);
  }
}

/** NaN and ±Infinity are not JSON: they are written as the strings "NaN", "Infinity", "-Infinity". */
function finite(v: unknown): unknown {
  return typeof v === 'number' && !Number.isFinite(v) ? String(v) : v;
}

/** The records of a metrics.jsonl file; lines that do not parse (a torn last line) are skipped. */
export function readRecords(file: string): LogRecord[] {
  if (!existsSync(file)) return [];
  const out: LogRecord[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      const r = JSON.parse(line) as LogRecord;
      if (r && typeof r === 'object' && typeof r.step === 'number') out.push(r);
    } catch {
      // A line cut short by a kill.
    }
  }
  return out;
}
