// "Did you mean" for missing keys: the names closest to a wanted one, by shared suffix or prefix
// (checkpoints differ in a "model." or "transformer." prefix) and by edit distance (typos).

/** Edit-distance cells computed per call at most (~50 ms): files with tens of thousands of names stay fast. */
const CELL_BUDGET = 20_000_000;

/** Up to `max` names from `names` close to `wanted`, best first; [] when nothing is close. */
export function closeNames(wanted: string, names: Iterable<string>, max = 3): string[] {
  const limit = Math.max(2, Math.floor(wanted.length / 3));
  const scored: { name: string; score: number }[] = [];
  let cells = 0;
  for (const name of names) {
    let score = affix(wanted, name);
    if (score > 1 && cells < CELL_BUDGET) {
      cells += wanted.length * name.length;
      score = levenshtein(wanted, name, limit + 1);
    }
    if (score <= limit) scored.push({ name, score });
  }
  scored.sort((a, b) => a.score - b.score || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  // Only the near-best: a prefix match (score 1) should not drag in every name a few edits away.
  const best = scored[0]?.score ?? 0;
  return scored
    .filter((s) => s.score <= best + 2)
    .slice(0, max)
    .map((s) => s.name);
}

/** Formats suggestions for an error message: ` (did you mean "a" or "b"?)`, or '' when there are none. */
export function didYouMean(wanted: string, names: Iterable<string>): string {
  const close = closeNames(wanted, names);
  if (close.length === 0) return '';
  return ` (did you mean ${close.map((n) => JSON.stringify(n)).join(' or ')}?)`;
}

/** 0 for the same name, 1 when one ends or starts with the other at a dot ("model." prefixes), else Infinity. */
function affix(a: string, b: string): number {
  if (a === b) return 0;
  const [short, long] = a.length <= b.length ? [a, b] : [b, a];
  return short.length > 0 && (long.endsWith(`.${short}`) || long.startsWith(`${short}.`)) ? 1 : Infinity;
}

let rowA = new Int32Array(64);
let rowB = new Int32Array(64);

/** Edit distance, giving up (returning `cap`) once every path exceeds it. Rows are reused typed arrays. */
function levenshtein(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) >= cap) return cap;
  if (rowA.length <= b.length) [rowA, rowB] = [new Int32Array(b.length + 1), new Int32Array(b.length + 1)];
  let prev = rowA;
  let cur = rowB;
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    let rowMin = i;
    const ca = a.charCodeAt(i - 1);
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j - 1]! + (ca === b.charCodeAt(j - 1) ? 0 : 1), prev[j]! + 1, cur[j - 1]! + 1);
      cur[j] = v;
      if (v < rowMin) rowMin = v;
    }
    if (rowMin >= cap) return cap;
    [prev, cur] = [cur, prev];
  }
  return Math.min(prev[b.length]!, cap);
}
