// Classification metrics with scikit-learn's (1.9) semantics: accuracy_score, f1_score (binary /
// macro / micro, zero_division=0), matthews_corrcoef (multiclass too). Arguments are (pred, gold), the
// reverse of sklearn's (y_true, y_pred); labels must be integers; empty input throws, as sklearn 1.9.

export interface F1Options {
  /** sklearn's `average`: 'binary' (default) scores the `positive` class only. */
  average?: 'binary' | 'macro' | 'micro';
  /** sklearn's `pos_label` for average='binary' (default 1); ignored otherwise, as in sklearn. */
  positive?: number;
}

function check(metric: string, pred: readonly number[], gold: readonly number[]): void {
  if (pred.length !== gold.length) {
    throw new Error(`${metric}: pred has ${pred.length} labels but gold has ${gold.length}`);
  }
  // sklearn (check_consistent_length / _check_targets): "Found empty input array"
  if (pred.length === 0) throw new Error(`${metric}: empty input`);
  for (const v of [...pred, ...gold]) {
    if (!Number.isInteger(v)) {
      // sklearn's type_of_target calls such input 'continuous' and every metric here refuses it.
      throw new Error(`${metric}: labels must be integers, got ${v}`);
    }
  }
}

/** sorted(set(gold) | set(pred)), sklearn's unique_labels. */
function labelsOf(pred: readonly number[], gold: readonly number[]): number[] {
  return [...new Set([...gold, ...pred])].sort((a, b) => a - b);
}

/** sklearn.metrics.accuracy_score(gold, pred): the fraction of exact matches. */
export function accuracy(pred: number[], gold: number[]): number {
  check('accuracy', pred, gold);
  let ok = 0;
  for (let i = 0; i < pred.length; i++) if (pred[i] === gold[i]) ok++;
  return ok / pred.length;
}

/** F1 of one label from its counts, sklearn's 2·tp / (2·tp + fp + fn) with zero_division=0. */
function f1FromCounts(tp: number, fp: number, fn: number): number {
  const denom = 2 * tp + fp + fn;
  return denom === 0 ? 0 : (2 * tp) / denom;
}

/**
 * sklearn.metrics.f1_score(gold, pred, average=..., pos_label=positive, zero_division=0).
 * - 'binary': at most two distinct labels may occur (else sklearn's "Target is multiclass" error); when
 *   two occur, `positive` must be one of them.
 * - 'macro': unweighted mean of per-label F1 over every label present in gold or pred.
 * - 'micro': F1 of the pooled counts (equals accuracy for single-label data).
 */
export function f1(pred: number[], gold: number[], opts: F1Options = {}): number {
  check('f1', pred, gold);
  const average = opts.average ?? 'binary';
  const labels = labelsOf(pred, gold);
  const counts = (label: number): [number, number, number] => {
    let tp = 0;
    let fp = 0;
    let fn = 0;
    for (let i = 0; i < pred.length; i++) {
      const p = pred[i] === label;
      const g = gold[i] === label;
      if (p && g) tp++;
      else if (p) fp++;
      else if (g) fn++;
    }
    return [tp, fp, fn];
  };
  if (average === 'binary') {
    const positive = opts.positive ?? 1;
    if (labels.length > 2) {
      throw new Error("f1: target is multiclass but average='binary'; choose average 'macro' or 'micro'");
    }
    if (labels.length === 2 && !labels.includes(positive)) {
      throw new Error(`f1: positive=${positive} is not a valid label; it should be one of [${labels.join(', ')}]`);
    }
    return f1FromCounts(...counts(positive));
  }
  if (average === 'micro') {
    let tp = 0;
    let fp = 0;
    let fn = 0;
    for (const l of labels) {
      const [a, b, c] = counts(l);
      tp += a;
      fp += b;
      fn += c;
    }
    return f1FromCounts(tp, fp, fn);
  }
  if (average === 'macro') {
    let sum = 0;
    for (const l of labels) sum += f1FromCounts(...counts(l));
    return sum / labels.length;
  }
  throw new Error(`f1: unknown average '${String(average)}'`);
}

/**
 * sklearn.metrics.matthews_corrcoef(gold, pred), the multiclass R_K statistic from the confusion
 * matrix: (c·s − Σ p_k t_k) / sqrt((s² − Σ p_k²)(s² − Σ t_k²)), 0 when the denominator is 0.
 */
export function matthewsCorrcoef(pred: number[], gold: number[]): number {
  check('matthewsCorrcoef', pred, gold);
  const labels = labelsOf(pred, gold);
  const index = new Map(labels.map((l, i) => [l, i]));
  const tSum = new Array<number>(labels.length).fill(0);
  const pSum = new Array<number>(labels.length).fill(0);
  let correct = 0;
  for (let i = 0; i < pred.length; i++) {
    tSum[index.get(gold[i])!]++;
    pSum[index.get(pred[i])!]++;
    if (pred[i] === gold[i]) correct++;
  }
  const n = pred.length;
  let tp = 0;
  let pp = 0;
  let tt = 0;
  for (let k = 0; k < labels.length; k++) {
    tp += tSum[k] * pSum[k];
    pp += pSum[k] * pSum[k];
    tt += tSum[k] * tSum[k];
  }
  const covYtYp = correct * n - tp;
  const covYpYp = n * n - pp;
  const covYtYt = n * n - tt;
  if (covYpYp * covYtYt === 0) return 0;
  return covYtYp / Math.sqrt(covYtYt * covYpYp);
}
