// output_dir/plot.svg: training loss (and validation loss) over steps in the upper panel, the validation
// metric in the lower one. Plain SVG written by hand: axes with rounded ticks, polylines, a legend.

import type { LogRecord } from './log.js';

interface Series {
  label: string;
  color: string;
  points: [number, number][];
  dots?: boolean;
}

const WIDTH = 720;
const PANEL = 230;
const MARGIN = { left: 64, right: 20, top: 36, bottom: 34 };

/** The SVG document for a run's records; `metric` names the validation metric shown below the loss. */
export function renderPlot(records: readonly LogRecord[], opts: { metric: string | null; title: string }): string {
  const num = (r: LogRecord, k: string): number | null => {
    const v = r[k];
    return typeof v === 'number' && Number.isFinite(v) ? v : null;
  };
  const pick = (type: LogRecord['type'], key: string): [number, number][] =>
    records
      .filter((r) => r.type === type)
      .map((r) => [r.step, num(r, key)] as [number, number | null])
      .filter((p): p is [number, number] => p[1] !== null);
  const loss: Series[] = [
    { label: 'training loss', color: '#1f77b4', points: pick('train', 'loss') },
    { label: 'validation loss', color: '#d62728', points: pick('eval', 'eval_loss'), dots: true },
  ];
  const panels: { title: string; series: Series[] }[] = [{ title: 'loss', series: loss }];
  if (opts.metric && opts.metric !== 'loss') {
    panels.push({
      title: `validation ${opts.metric}`,
      series: [{ label: opts.metric, color: '#2ca02c', points: pick('eval', `eval_${opts.metric}`), dots: true }],
    });
  }
  const steps = records.map((r) => r.step);
  const xMax = Math.max(1, ...steps);
  const height = panels.length * (PANEL + MARGIN.top + MARGIN.bottom);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height + 24}" viewBox="0 0 ${WIDTH} ${height + 24}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="16" text-anchor="middle" font-size="13">${escapeXml(opts.title)}</text>`,
  ];
  panels.forEach((p, i) => parts.push(panel(p.title, p.series, xMax, 24 + i * (PANEL + MARGIN.top + MARGIN.bottom))));
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

function panel(title: string, series: Series[], xMax: number, top: number): string {
  const x0 = MARGIN.left;
  const x1 = WIDTH - MARGIN.right;
  const y0 = top + MARGIN.top;
  const y1 = y0 + PANEL;
  const values = series.flatMap((s) => s.points.map((p) => p[1]));
  let lo = values.length ? Math.min(...values) : 0;
  let hi = values.length ? Math.max(...values) : 1;
  if (hi - lo < 1e-12) [lo, hi] = [lo - 0.5, hi + 0.5];
  const yTicks = niceTicks(lo, hi, 5);
  lo = Math.min(lo, yTicks[0]!);
  hi = Math.max(hi, yTicks[yTicks.length - 1]!);
  const sx = (x: number) => x0 + (x / xMax) * (x1 - x0);
  const sy = (y: number) => y1 - ((y - lo) / (hi - lo)) * (y1 - y0);
  const out: string[] = [`<g>`, `<text x="${x0}" y="${y0 - 8}" font-size="12">${escapeXml(title)}</text>`];
  for (const t of yTicks) {
    const y = sy(t).toFixed(1);
    out.push(`<line x1="${x0}" x2="${x1}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${x0 - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`);
  }
  for (const t of niceTicks(0, xMax, 8).filter((t) => t <= xMax)) {
    const x = sx(t).toFixed(1);
    out.push(`<line x1="${x}" x2="${x}" y1="${y1}" y2="${y1 + 4}" stroke="#333"/>`);
    out.push(`<text x="${x}" y="${y1 + 16}" text-anchor="middle">${fmt(t)}</text>`);
  }
  out.push(`<rect x="${x0}" y="${y0}" width="${x1 - x0}" height="${PANEL}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${(x0 + x1) / 2}" y="${y1 + 30}" text-anchor="middle">step</text>`);
  series.forEach((s, k) => {
    if (s.points.length === 0) return;
    const pts = s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${pts}" fill="none" stroke="${s.color}" stroke-width="1.5"/>`);
    if (s.dots)
      for (const [x, y] of s.points)
        out.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
    const lx = x1 - 150;
    const ly = y0 + 14 + 16 * k;
    out.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"/>`);
    out.push(`<text x="${lx + 24}" y="${ly}" dominant-baseline="middle">${escapeXml(s.label)}</text>`);
  });
  out.push('</g>');
  return out.join('\n');
}

/** About `count` round tick values (1, 2 or 5 × 10ᵏ apart) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count: number): number[] {
  const span = hi - lo;
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const first = Math.floor(lo / step) * step;
  const ticks: number[] = [];
  for (let t = first; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  if (ticks[ticks.length - 1]! < hi) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e5 || a < 1e-3 ? v.toExponential(1) : String(Number(v.toPrecision(4)));
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
