// LayerNorm (GPT-2, BERT, ViT) and RMSNorm (Llama family) over the last axis. The forward saves
// only per-row statistics (mean/rstd), as llm.c does; the backward recomputes x̂ from x.

import { recordReads } from '../autograd/graph.js';
import { ShapeError, fmtShape } from '../tensor/errors.js';
import { zerosLike } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import { fused } from './kernels.js';
import { contiguous } from './movement.js';
import { alloc, allocLike, paramDTypes, sameBackend } from './util.js';

function checkAffine(op: string, x: Tensor, ...ps: (Tensor | null | undefined)[]): void {
  const c = x.shape[x.rank - 1];
  for (const p of ps) {
    if (p && (p.rank !== 1 || p.shape[0] !== c)) {
      throw new ShapeError(`[${op}] Parameter of shape ${fmtShape(p.shape)} does not fit input ${fmtShape(x.shape)}`);
    }
  }
}

/** (x − mean) / √(var + eps) · weight + bias over the last axis (biased variance, as torch). */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  const ps = [weight, bias].filter((p): p is Tensor => p !== null);
  const sd = paramDTypes('layerNorm', x, ps);
  checkAffine('layerNorm', x, weight, bias);
  const backend = sameBackend('layerNorm', x, ...ps);
  const rows = x.numel / (x.shape[x.rank - 1] || 1);
  const xc = contiguous(x);
  const wc = weight ? contiguous(weight) : null;
  const bc = bias ? contiguous(bias) : null;
  const y = allocLike(x);
  const mean = alloc(backend, [rows], sd);
  const rstd = alloc(backend, [rows], sd);
  fused(backend).layerNorm(
    y.view('layerNorm'),
    mean.view('layerNorm'),
    rstd.view('layerNorm'),
    xc.view('layerNorm'),
    wc?.view('layerNorm') ?? null,
    bc?.view('layerNorm') ?? null,
    eps,
  );
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  return recordReads(
    'layerNorm',
    y,
    inputs,
    (dy, needs) => {
      const g = contiguous(dy);
      const dx = needs[0] ? allocLike(x) : null;
      const iw = weight ? 1 : -1;
      const ib = bias ? (weight ? 2 : 1) : -1;
      const dw = iw > 0 && needs[iw] ? zerosLike(weight!) : null;
      const db = ib > 0 && needs[ib] ? zerosLike(bias!) : null;
      fused(backend).layerNormBackward(
        dx?.view('layerNorm') ?? null,
        dw?.view('layerNorm') ?? null,
        db?.view('layerNorm') ?? null,
        g.view('layerNorm'),
        xc.view('layerNorm'),
        wc?.view('layerNorm') ?? null,
        mean.view('layerNorm'),
        rstd.view('layerNorm'),
      );
      if (g !== dy) g.dispose();
      return [dx, ...(weight ? [dw] : []), ...(bias ? [db] : [])];
    },
    [xc, wc], // the rule reads x, the weight and the statistics; not the output or the bias
    [mean, rstd, ...owned(xc, x), ...(wc ? owned(wc, weight!) : []), ...(bc ? owned(bc, bias!) : [])],
  );
}

/** x / √(mean(x²) + eps) · weight over the last axis (LlamaRMSNorm). */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps = 1e-6): Tensor {
  const ps = weight ? [weight] : [];
  const sd = paramDTypes('rmsNorm', x, ps);
  checkAffine('rmsNorm', x, weight);
  const backend = sameBackend('rmsNorm', x, ...ps);
  const rows = x.numel / (x.shape[x.rank - 1] || 1);
  const xc = contiguous(x);
  const wc = weight ? contiguous(weight) : null;
  const y = allocLike(x);
  const rstd = alloc(backend, [rows], sd);
  fused(backend).rmsNorm(y.view('rmsNorm'), rstd.view('rmsNorm'), xc.view('rmsNorm'), wc?.view('rmsNorm') ?? null, eps);
  return recordReads(
    'rmsNorm',
    y,
    [x, ...ps],
    (dy, needs) => {
      const g = contiguous(dy);
      const dx = needs[0] ? allocLike(x) : null;
      const dw = weight && needs[1] ? zerosLike(weight) : null;
      fused(backend).rmsNormBackward(
        dx?.view('rmsNorm') ?? null,
        dw?.view('rmsNorm') ?? null,
        g.view('rmsNorm'),
        xc.view('rmsNorm'),
        wc?.view('rmsNorm') ?? null,
        rstd.view('rmsNorm'),
      );
      if (g !== dy) g.dispose();
      return weight ? [dx, dw] : [dx];
    },
    [xc, wc],
    [rstd, ...owned(xc, x), ...(wc ? owned(wc, weight!) : [])],
  );
}

/** A contiguous copy made by the op is owned by its graph node; the caller's tensor is not. */
function owned(copy: Tensor, original: Tensor): Tensor[] {
  return copy === original ? [] : [copy];
}
