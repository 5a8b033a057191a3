// The device state of a continuously batched generation (continuous.ts): a KV cache whose rows have
// different lengths and come and go, with each row's next input id, its position and the key mask.
//
// Rows are slots [0, B) of buffers sized for maxRows: keys and values [maxRows, cap, Hkv, D] per layer,
// a bool mask [maxRows, cap], ids and positions i32 [maxRows, 1]. Every row ends at the same column L
// (right-aligned: row r's n_r cached tokens fill columns [L − n_r, L), the mask is 0 left of them), so a
// decoding step writes column L of every row with one strided copy and the attention reads columns
// [0, L + 1) of rows [0, B) as views, as with a left-padded batch. A row's positions are its own (0 at its
// first token), so where it sits in the columns does not change what it computes. A new row is
// prefilled alone straight into the next free slot (prefillCache), then joins; a finished row is
// replaced by the last one (one row copy), so the live rows stay [0, B). When a new row is longer than L,
// or column L runs past the buffers, the live block is copied into new buffers with the columns before
// the longest row dropped (relayout): L stays bounded by the longest live row, not by how long the batch
// has been running. Nothing here reads the device.

import type { Backend, View } from '../backends/backend.js';
import { full, zeros } from '../tensor/creation.js';
import { ShapeError, fmtShape } from '../tensor/errors.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import type { LayerCache } from '../models/pretrained.js';

interface Layer {
  k: Tensor; // (maxRows, cap, Hkv, D)
  v: Tensor;
}

export class RaggedCache implements LayerCache {
  readonly maxRows: number;
  readonly #backend: Backend;
  readonly #minCap: number;
  #cap: number;
  #layers: (Layer | undefined)[] = [];
  /** What the layers hold: [Hkv, D] and dtype, from the first write. */
  #shape: { h: number; d: number; like: Tensor['dtype'] } | null = null;
  #mask: Tensor; // bool (maxRows, cap)
  readonly #ids: Tensor; // i32 (maxRows, 1): each row's next input token
  readonly #positions: Tensor; // i32 (maxRows, 1): its position
  readonly #ones: Tensor; // bool (maxRows): copied into a mask column
  /** Columns in use (every live row ends here). */
  #len = 0;
  /** Live rows: slots [0, rows). */
  #rows = 0;
  /** Tokens cached per slot. */
  readonly #spans: number[];

  constructor(backend: Backend, maxRows: number, capacity = 64) {
    if (!Number.isInteger(maxRows) || maxRows < 1) throw new RangeError(`[generate] maxRows = ${maxRows} must be ≥ 1`);
    this.maxRows = maxRows;
    this.#backend = backend;
    this.#minCap = Math.max(2, capacity);
    this.#cap = this.#minCap;
    this.#spans = new Array<number>(maxRows).fill(0);
    this.#mask = keep(zeros([maxRows, this.#cap], { dtype: 'bool', backend }));
    this.#ids = keep(zeros([maxRows, 1], { dtype: 'i32', backend }));
    this.#positions = keep(zeros([maxRows, 1], { dtype: 'i32', backend }));
    this.#ones = keep(full([maxRows], 1, { dtype: 'bool', backend }));
  }

  /** Columns in use (LayerCache: models ask it only when given no position ids). */
  get length(): number {
    return this.#len;
  }

  get rows(): number {
    return this.#rows;
  }

  get capacity(): number {
    return this.#cap;
  }

  /** Inputs of a decoding step over the live rows: views of the kept buffers (column L is opened first). */
  stepInputs(): { inputIds: Tensor; positionIds: Tensor; attentionMask: Tensor } {
    if (this.#rows === 0) throw new Error('[generate] No rows to step');
    this.#fit(0);
    const b = this.#rows;
    // Column L becomes a key of every live row: a strided fill through a copy from ones.
    const m = this.#mask.view('generate');
    const col: View = { ...m, offset: m.offset + this.#len, shape: [b], strides: [this.#cap] };
    this.#backend.copy(col, { ...this.#ones.view('generate'), shape: [b] });
    return {
      inputIds: ops.slice(this.#ids, 0, 0, b),
      positionIds: ops.slice(this.#positions, 0, 0, b),
      attentionMask: ops.slice(ops.slice(this.#mask, 0, 0, b), 1, 0, this.#len + 1),
    };
  }

  /** Appends the step's keys and values [B, 1, Hkv, D] at column L; returns rows [0, B), columns [0, L + 1). */
  update(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    const b = this.#rows;
    if (k.rank !== 4 || k.shape[0] !== b || k.shape[1] !== 1)
      throw new ShapeError(`[RaggedCache] A step appends [${b}, 1, Hkv, D] keys; got ${fmtShape(k.shape)}`);
    const e = this.#layer(layer, k);
    this.#write(e, k, v, 0, this.#len);
    return {
      k: ops.slice(ops.slice(e.k, 0, 0, b), 1, 0, this.#len + 1),
      v: ops.slice(ops.slice(e.v, 0, 0, b), 1, 0, this.#len + 1),
    };
  }

  /**
   * Ends a decoding step: column L was written in every layer; the rows' next ids are `next` (i32 [B], on
   * the device: a greedy step's argmax) and their positions move one on.
   */
  advance(next: Tensor): void {
    const b = this.#rows;
    this.#len++;
    for (let r = 0; r < b; r++) this.#spans[r]!++;
    const ids = this.#ids.view('generate');
    this.#backend.copy({ ...ids, shape: [b], strides: [1] }, next.view('generate'));
    const p = this.#positions.view('generate');
    const live: View = { ...p, shape: [b], strides: [1] };
    this.#backend.scalar('add_s', live, live, 1);
  }

  /**
   * A cache for prefilling an n-token prompt alone into the next free slot: its keys and values go to
   * that slot's columns [L − n, L) (L grows to n first when shorter), which the mask opens. Call join()
   * after the prefill succeeds.
   */
  prefillCache(n: number): LayerCache & { mask: Tensor } {
    const slot = this.#rows;
    if (slot >= this.maxRows) throw new Error(`[generate] All ${this.maxRows} rows are in use`);
    this.#fit(n);
    const from = this.#len - n;
    const m = this.#mask.view('generate');
    const row = m.offset + slot * this.#cap;
    this.#backend.fill({ ...m, offset: row, shape: [this.#cap], strides: [1] }, 0);
    this.#backend.fill({ ...m, offset: row + from, shape: [n], strides: [1] }, 1);
    return {
      length: 0,
      mask: ops.slice(ops.slice(this.#mask, 0, slot, slot + 1), 1, from, this.#len),
      update: (layer, k, v) => {
        if (k.rank !== 4 || k.shape[0] !== 1 || k.shape[1] !== n)
          throw new ShapeError(`[RaggedCache] A prefill writes [1, ${n}, Hkv, D] keys; got ${fmtShape(k.shape)}`);
        const e = this.#layer(layer, k);
        this.#write(e, k, v, slot, from);
        return {
          k: ops.slice(ops.slice(e.k, 0, slot, slot + 1), 1, from, from + n),
          v: ops.slice(ops.slice(e.v, 0, slot, slot + 1), 1, from, from + n),
        };
      },
    };
  }

  /** The prefilled slot joins the live rows, its next input `token` at position n (no upload: fills). */
  join(n: number, token: number): number {
    const slot = this.#rows++;
    this.#spans[slot] = n;
    const set = (t: Tensor, value: number) => {
      const v = t.view('generate');
      this.#backend.fill({ ...v, offset: v.offset + slot, shape: [1], strides: [1] }, value);
    };
    set(this.#ids, token);
    set(this.#positions, n);
    return slot;
  }

  /** Removes row `slot`: the last live row moves into it (the caller moves its host state the same way). */
  remove(slot: number): void {
    const last = --this.#rows;
    if (slot !== last) {
      const b = this.#backend;
      for (const e of this.#layers) if (e) for (const t of [e.k, e.v]) copyRow(b, t, last, slot);
      for (const t of [this.#mask, this.#ids, this.#positions]) copyRow(b, t, last, slot);
      this.#spans[slot] = this.#spans[last]!;
    }
    if (this.#rows === 0) this.#len = 0;
  }

  dispose(): void {
    for (const e of this.#layers) {
      e?.k.dispose();
      e?.v.dispose();
    }
    this.#layers = [];
    for (const t of [this.#mask, this.#ids, this.#positions, this.#ones]) t.dispose();
  }

  #layer(layer: number, k: Tensor): Layer {
    const [, , h, d] = k.shape as [number, number, number, number];
    if (!this.#shape) this.#shape = { h, d, like: k.dtype };
    else if (this.#shape.h !== h || this.#shape.d !== d)
      throw new ShapeError(
        `[RaggedCache] Layers hold [.., ${this.#shape.h}, ${this.#shape.d}]; got ${fmtShape(k.shape)}`,
      );
    let e = this.#layers[layer];
    if (!e) {
      // Zeros, not empty: masked keys still enter the attention's products, and garbage could be NaN.
      const opts = { dtype: k.dtype, backend: this.#backend };
      e = {
        k: keep(zeros([this.maxRows, this.#cap, h, d], opts)),
        v: keep(zeros([this.maxRows, this.#cap, h, d], opts)),
      };
      this.#layers[layer] = e;
    }
    return e;
  }

  /** Copies k, v [rows, T, Hkv, D] into the layer's buffers from row `row`, column `col`. */
  #write(e: Layer, k: Tensor, v: Tensor, row: number, col: number): void {
    for (const [dst, src] of [
      [e.k, k],
      [e.v, v],
    ] as const) {
      const dv = dst.view('RaggedCache');
      const offset = dv.offset + row * dst.strides[0]! + col * dst.strides[1]!;
      this.#backend.copy({ ...dv, offset, shape: src.shape }, src.view('RaggedCache'));
    }
  }

  /**
   * Makes L ≥ minLen with room for one more column: when it is not so, the live block (the columns of the
   * longest live row) moves into new buffers, ending at the new L = max(longest, minLen), with as many
   * free columns again after it.
   */
  #fit(minLen: number): void {
    if (this.#len >= minLen && this.#len + 1 <= this.#cap) return;
    const span = Math.max(0, ...this.#spans.slice(0, this.#rows));
    const len = Math.max(span, minLen);
    const cap = Math.max(this.#minCap, 2 * (len + 1));
    const b = this.#backend;
    const move = (old: Tensor, shape: number[], dtype: Tensor['dtype']): Tensor => {
      const fresh = keep(zeros(shape, { dtype, backend: b }));
      if (this.#rows > 0 && span > 0) {
        const o = old.view('RaggedCache');
        const f = fresh.view('RaggedCache');
        const block = [this.#rows, span, ...shape.slice(2)];
        b.copy(
          { ...f, offset: f.offset + (len - span) * fresh.strides[1]!, shape: block },
          { ...o, offset: o.offset + (this.#len - span) * old.strides[1]!, shape: block },
        );
      }
      old.dispose();
      return fresh;
    };
    this.#mask = move(this.#mask, [this.maxRows, cap], 'bool');
    if (this.#shape) {
      const { h, d, like } = this.#shape;
      this.#layers = this.#layers.map(
        (e) => e && { k: move(e.k, [this.maxRows, cap, h, d], like), v: move(e.v, [this.maxRows, cap, h, d], like) },
      );
    }
    this.#cap = cap;
    this.#len = len;
  }
}

/** Copies row `from` of t (slot axis 0) onto row `to`. */
function copyRow(b: Backend, t: Tensor, from: number, to: number): void {
  const v = t.view('RaggedCache');
  const shape = [1, ...t.shape.slice(1)];
  b.copy(
    { ...v, offset: v.offset + to * t.strides[0]!, shape },
    { ...v, offset: v.offset + from * t.strides[0]!, shape },
  );
}
