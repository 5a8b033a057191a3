// What a run shows while it trains: on a terminal, one progress line redrawn in place (step, loss,
// throughput, ETA) with log lines printed above it; elsewhere (a pipe, a CI log) plain lines only.

export interface Sink {
  isTTY?: boolean;
  columns?: number;
  write(s: string): unknown;
}

export interface StepStatus {
  step: number;
  totalSteps: number;
  epoch: number;
  /** The latest loss read back (the trainer reads at logging steps), null before the first. */
  loss: number | null;
  lr: number;
  stepsPerSec: number;
  tokensPerSec: number;
}

export class Progress {
  #last = 0;
  #drawn = false;

  constructor(readonly sink: Sink) {}

  get tty(): boolean {
    return this.sink.isTTY === true;
  }

  /** Redraws the bar (a terminal only; at most ten times a second unless `force`). */
  update(s: StepStatus, force = false): void {
    if (!this.tty) return;
    const now = performance.now();
    if (!force && now - this.#last < 100 && s.step !== s.totalSteps) return;
    this.#last = now;
    const width = Math.max(10, Math.min(30, (this.sink.columns ?? 100) - 80));
    const done = Math.round((width * s.step) / Math.max(1, s.totalSteps));
    const bar = `${'█'.repeat(done)}${'·'.repeat(width - done)}`;
    const pct = ((100 * s.step) / Math.max(1, s.totalSteps)).toFixed(0).padStart(3);
    this.sink.write(`\r\x1b[2K${pct}% ${bar} ${statusText(s)}`);
    this.#drawn = true;
  }

  /** A line of its own (above the bar on a terminal). */
  line(text: string): void {
    if (this.#drawn) this.sink.write('\r\x1b[2K');
    this.sink.write(`${text}\n`);
    this.#drawn = false;
  }

  /** Ends the bar's line. */
  done(): void {
    if (this.#drawn) this.sink.write('\n');
    this.#drawn = false;
  }
}

/** "step 120/500  loss 0.4312  lr 1.2e-4  3.2 steps/s  1.2k tok/s  ETA 1m58s". */
export function statusText(s: StepStatus): string {
  const eta = s.stepsPerSec > 0 ? (s.totalSteps - s.step) / s.stepsPerSec : NaN;
  const parts = [
    `step ${s.step}/${s.totalSteps}`,
    `epoch ${s.epoch.toFixed(2)}`,
    `loss ${fmtLoss(s.loss)}`,
    `lr ${s.lr.toExponential(2)}`,
    `${s.stepsPerSec.toFixed(s.stepsPerSec < 10 ? 2 : 1)} steps/s`,
  ];
  if (s.tokensPerSec > 0) parts.push(`${compact(s.tokensPerSec)} tok/s`);
  parts.push(`ETA ${duration(eta)}`);
  return parts.join('  ');
}

function fmtLoss(v: number | null): string {
  if (v === null) return '–';
  return Number.isFinite(v) ? v.toFixed(4) : String(v);
}

/** 950 → "950", 12_300 → "12.3k", 4_500_000 → "4.5M". */
export function compact(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return v.toFixed(0);
}

/** Seconds as "42s", "3m05s", "2h07m"; "?" when unknown. */
export function duration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '?';
  const s = Math.round(sec);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
