// Training examples and datasets: the Example/Dataset interfaces the trainer consumes, the compact
// column storage the loaders fill (token ids of all rows in one Int32Array), and index subsets.

export interface Example {
  /** Token ids (text tasks). */
  inputIds?: number[];
  tokenTypeIds?: number[];
  /** Per-token targets for causal LM / instruction data (−100 = no loss), same length as inputIds. */
  labels?: number[];
  /** Class index (classification) or value (regression) for sequence-level tasks. */
  label?: number;
  /** [3·H·W] channels-first, preprocessed, for image tasks. */
  pixelValues?: Float32Array;
  /** Where it came from, for error messages: "train.csv:17". */
  source?: string;
}

export type TaskKind = 'classification' | 'regression' | 'causal-lm' | 'image-classification';

export interface Dataset {
  readonly kind: TaskKind;
  readonly length: number;
  get(i: number): Example;
  /** Class names, index = class id (classification tasks). */
  readonly labelNames?: string[];
  /** Rows skipped at load because they were malformed (onBadRow 'skip'). */
  readonly skipped?: number;
  /**
   * Token count of example i without building it (what length bucketing sorts by); optional, the
   * sampler falls back to get(i).
   */
  exampleLength?(i: number): number;
}

/** The label value for an ignored (no-loss) token, as PyTorch's cross-entropy ignore_index. */
export const IGNORE_INDEX = -100;

/** Throws a RangeError unless 0 ≤ i < n (an integer). */
export function checkIndex(i: number, n: number, what: string): void {
  if (!Number.isInteger(i) || i < 0 || i >= n)
    throw new RangeError(`[data] ${what}: index ${i} out of range [0, ${n})`);
}

/** Variable-length integer rows stored back to back in one growable Int32Array (tokenize once, keep it small). */
export class Ragged {
  private data = new Int32Array(1024);
  private used = 0;
  private readonly starts: number[] = [0];

  get rows(): number {
    return this.starts.length - 1;
  }

  push(row: ArrayLike<number>): void {
    const need = this.used + row.length;
    if (need > this.data.length) {
      const grown = new Int32Array(Math.max(need, this.data.length * 2));
      grown.set(this.data.subarray(0, this.used));
      this.data = grown;
    }
    for (let k = 0; k < row.length; k++) this.data[this.used + k] = row[k]!;
    this.used = need;
    this.starts.push(need);
  }

  /** Row i as a view (valid until the next push). */
  row(i: number): Int32Array {
    return this.data.subarray(this.starts[i]!, this.starts[i + 1]!);
  }

  rowLength(i: number): number {
    return this.starts[i + 1]! - this.starts[i]!;
  }

  /** Total number of values across rows. */
  get total(): number {
    return this.used;
  }
}

/** Columns of a tokenized dataset; rows line up (row i of each column is example i). */
export interface TokenColumns {
  kind: TaskKind;
  inputIds: Ragged;
  tokenTypeIds?: Ragged;
  labels?: Ragged;
  /** Sequence-level label per example (class index or regression value). */
  label?: ArrayLike<number>;
  /** Example.source per row (file:line). */
  sources?: string[];
  labelNames?: string[];
  skipped?: number;
}

/** A Dataset over TokenColumns: examples are built on get() from the packed ids. */
export class TokenDataset implements Dataset {
  readonly kind: TaskKind;
  readonly labelNames?: string[];
  readonly skipped?: number;

  constructor(private readonly cols: TokenColumns) {
    this.kind = cols.kind;
    if (cols.labelNames !== undefined) this.labelNames = cols.labelNames;
    if (cols.skipped !== undefined) this.skipped = cols.skipped;
  }

  get length(): number {
    return this.cols.inputIds.rows;
  }

  get(i: number): Example {
    checkIndex(i, this.length, 'dataset.get');
    const c = this.cols;
    const ex: Example = { inputIds: Array.from(c.inputIds.row(i)) };
    if (c.tokenTypeIds) ex.tokenTypeIds = Array.from(c.tokenTypeIds.row(i));
    if (c.labels) ex.labels = Array.from(c.labels.row(i));
    else if (c.kind === 'causal-lm') ex.labels = ex.inputIds!.slice(); // plain text: every token is a target
    if (c.label) ex.label = c.label[i]!;
    if (c.sources) ex.source = c.sources[i]!;
    return ex;
  }

  exampleLength(i: number): number {
    return this.cols.inputIds.rowLength(i);
  }
}

/** The examples of `ds` at `indices`, in that order (kind and labelNames kept). */
export function subset(ds: Dataset, indices: readonly number[], skipped?: number): Dataset {
  for (const i of indices) checkIndex(i, ds.length, 'subset');
  const idx = Int32Array.from(indices);
  const len = ds.exampleLength?.bind(ds);
  const out: Dataset = {
    kind: ds.kind,
    length: idx.length,
    get: (i: number) => {
      checkIndex(i, idx.length, 'dataset.get');
      return ds.get(idx[i]!);
    },
    ...(ds.labelNames === undefined ? {} : { labelNames: ds.labelNames }),
    ...(skipped === undefined ? {} : { skipped }),
    ...(len === undefined ? {} : { exampleLength: (i: number) => len(idx[i]!) }),
  };
  return out;
}

/** The token length bucketing uses for example i: its ids, else its labels, else 0 (images). */
export function lengthOf(ds: Dataset, i: number): number {
  if (ds.exampleLength) return ds.exampleLength(i);
  const ex = ds.get(i);
  return ex.inputIds?.length ?? ex.labels?.length ?? 0;
}
