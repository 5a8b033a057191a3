// The key/value cache of incremental decoding: per layer, keys and values [B, T, Hkv, D] held in
// buffers with spare capacity, so appending a step copies only the new rows. For inference only:
// appended tensors are copied out of the autograd graph.

import { empty } from '../tensor/creation.js';
import { ShapeError, fmtShape } from '../tensor/errors.js';
import { keep, scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import type { LayerCache } from '../models/pretrained.js';

interface LayerEntry {
  k: Tensor; // (B, capacity, Hkv, D)
  v: Tensor; // (B, capacity, Hkv, D)
  length: number;
}

export interface KVCacheOptions {
  /** Tokens to reserve per layer up front (e.g. prompt + max new tokens); grows by doubling past it. */
  capacity?: number;
}

export class KVCache implements LayerCache {
  readonly #layers: (LayerEntry | undefined)[] = [];
  readonly #capacity: number;

  constructor(opts: KVCacheOptions = {}) {
    this.#capacity = opts.capacity ?? 0;
  }

  /** Tokens cached so far (layer 0's count, as transformers' get_seq_length). */
  get length(): number {
    return this.#layers[0]?.length ?? 0;
  }

  /** Number of layers holding entries. */
  get numLayers(): number {
    return this.#layers.length;
  }

  /**
   * Appends k, v [B, T, Hkv, D] to layer `layer` and returns views of everything cached for it,
   * [B, Tpast + T, Hkv, D] (strided views of the buffers; the head axis is contiguous).
   */
  update(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor } {
    if (k.rank !== 4 || v.rank !== 4 || k.shape.some((s, i) => s !== v.shape[i]))
      throw new ShapeError(
        `[KVCache] Keys ${fmtShape(k.shape)} and values ${fmtShape(v.shape)} must both be [B, T, Hkv, D]`,
      );
    const [b, t, h, d] = k.shape as [number, number, number, number];
    let e = this.#layers[layer];
    if (e) {
      const [eb, , eh, ed] = e.k.shape;
      if (eb !== b || eh !== h || ed !== d)
        throw new ShapeError(
          `[KVCache] Layer ${layer} holds [${eb}, T, ${eh}, ${ed}] entries; cannot append ${fmtShape(k.shape)}`,
        );
    }
    const need = (e?.length ?? 0) + t;
    if (!e || need > e.k.shape[1]!) e = this.#grow(layer, e, b, h, d, need, k);
    for (const [dst, src] of [
      [e.k, k],
      [e.v, v],
    ] as const) {
      const dv = dst.view('KVCache');
      dst.backend.copy(
        { ...dv, shape: [b, t, h, d], offset: dv.offset + e.length * dst.strides[1]! },
        src.view('KVCache'),
      );
    }
    e.length = need;
    return { k: ops.slice(e.k, 1, 0, need), v: ops.slice(e.v, 1, 0, need) };
  }

  #grow(layer: number, old: LayerEntry | undefined, b: number, h: number, d: number, need: number, like: Tensor) {
    const cap = Math.max(need, this.#capacity, old ? 2 * old.k.shape[1]! : 0);
    const opts = { backend: like.backend, dtype: like.dtype };
    const k = keep(empty([b, cap, h, d], opts));
    const v = keep(empty([b, cap, h, d], opts));
    const length = old?.length ?? 0;
    if (old) {
      scope(() => {
        for (const [dst, src] of [
          [k, old.k],
          [v, old.v],
        ] as const) {
          const part = ops.slice(src, 1, 0, length);
          const dv = dst.view('KVCache');
          dst.backend.copy({ ...dv, shape: part.shape, strides: dst.strides }, part.view('KVCache'));
        }
      });
      old.k.dispose();
      old.v.dispose();
    }
    const e: LayerEntry = { k, v, length };
    this.#layers[layer] = e;
    return e;
  }

  /** Frees every buffer; the cache is empty afterwards. */
  dispose(): void {
    for (const e of this.#layers) {
      e?.k.dispose();
      e?.v.dispose();
    }
    this.#layers.length = 0;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
