// The pure-TypeScript backend: the reference definition of every kernel in backend.ts. Slow and
// obvious on purpose; it runs anywhere, supports f64 for gradient checks, and is the fallback when
// the native addon is not built.

import type { Backend, BackendBuffer, MemoryStats, View } from '../backend.js';
import type { DType, HostArray } from '../dtype.js';
import { ALL_DTYPES, DTYPE_BYTES, hostArray, hostArrayMatches } from '../dtype.js';
import { attention, attentionBackward } from './attention.js';
import { withBf16Views } from '../bf16-views.js';
import { JsBuffer, dataOf, viewOffsets } from './buffer.js';
import {
  binary,
  copy,
  fill,
  gatedActivation,
  gatedActivationBackward,
  scalar,
  unary,
  unaryGrad,
  unaryWithGrad,
  where,
} from './elementwise.js';
import { embedding, embeddingBackward, gather, scatterAdd } from './indexing.js';
import { crossEntropy, crossEntropyBackward } from './loss.js';
import { matmul } from './matmul.js';
import { adamw, dropout, rope, scaleAdd, scaleBackward, scaleFold, scaleGrads } from './misc.js';
import { layerNorm, layerNormBackward, rmsNorm, rmsNormBackward, softmax, softmaxBackward } from './norm.js';
import { argmax, reduce, topk } from './reduce.js';

export interface JsBackendOptions {
  /**
   * 'bf16': declare bf16 activations (Backend.activationDType), as the cuda backend does, so the front
   * end's autocast rules run on the CPU reference (tests); its kernels take bf16 views through the
   * widening fallback of ../bf16-views.ts, the contract's definition.
   */
  activationDType?: 'bf16';
}

export class JsBackend implements Backend {
  readonly name = 'js';
  readonly device = 'cpu';
  readonly dtypes: readonly DType[] = ALL_DTYPES;
  readonly activationDType?: 'bf16';
  #allocated = 0;

  constructor(opts: JsBackendOptions = {}) {
    if (opts.activationDType !== undefined) {
      if (opts.activationDType !== 'bf16')
        throw new Error(`[js] activationDType must be 'bf16' or absent, got ${JSON.stringify(opts.activationDType)}`);
      this.activationDType = opts.activationDType;
    }
    withBf16Views(this);
  }

  alloc(dtype: DType, numel: number): BackendBuffer {
    if (!Number.isSafeInteger(numel) || numel < 0) throw new Error(`[js alloc] Invalid element count ${numel}`);
    this.#allocated += numel * DTYPE_BYTES[dtype];
    return new JsBuffer(dtype, numel);
  }

  free(buf: BackendBuffer): void {
    const b = buf as JsBuffer;
    if (b.freed) return;
    this.#allocated -= b.byteLength;
    b.release();
  }

  upload(buf: BackendBuffer, dtype: DType, offset: number, data: HostArray): void {
    const b = buf as JsBuffer;
    if (b.dtype !== dtype || !hostArrayMatches(dtype, data))
      throw new Error(`[js upload] Host data does not match dtype ${dtype}`);
    if (offset < 0 || offset + data.length > b.data.length) throw new Error('[js upload] Data exceeds the buffer');
    (b.data as Float32Array).set(data as Float32Array, offset);
  }

  download(v: View): HostArray {
    const src = dataOf(v, 'download');
    const offs = viewOffsets(v, 'download');
    const out = hostArray(v.dtype, offs.length);
    for (let i = 0; i < offs.length; i++) (out as Float64Array)[i] = (src as Float64Array)[offs[i]!]!;
    return out;
  }

  memory(): MemoryStats {
    return { allocated: this.#allocated, cached: 0 };
  }

  emptyCache(): void {}
  sync(): void {}
  getThreads(): number {
    return 1;
  }
  setThreads(): void {}

  copy = copy;
  fill = fill;
  unary = unary;
  scalar = scalar;
  binary = binary;
  unaryGrad = unaryGrad;
  unaryWithGrad = unaryWithGrad;
  where = where;
  reduce = reduce;
  argmax = argmax;
  topk = topk;
  matmul = matmul;
  softmax = softmax;
  softmaxBackward = softmaxBackward;
  layerNorm = layerNorm;
  layerNormBackward = layerNormBackward;
  rmsNorm = rmsNorm;
  rmsNormBackward = rmsNormBackward;
  embedding = embedding;
  embeddingBackward = embeddingBackward;
  gather = gather;
  scatterAdd = scatterAdd;
  attention = attention;
  attentionBackward = attentionBackward;
  crossEntropy = crossEntropy;
  crossEntropyBackward = crossEntropyBackward;
  rope = rope;
  dropout = dropout;
  adamw = adamw;
  gatedActivation = gatedActivation;
  gatedActivationBackward = gatedActivationBackward;
  scaleFold = scaleFold;
  scaleGrads = scaleGrads;
  scaleAdd = scaleAdd;
  scaleBackward = scaleBackward;
}
