// Perplexity from a mean negative log-likelihood (natural log), as `math.exp(mean_nll)` /
// `torch.exp(loss)` in the usual Hugging Face evaluation loops.

/** exp(meanNll); Infinity once exp overflows (meanNll > ~709.78), NaN for NaN. */
export function perplexity(meanNll: number): number {
  return Math.exp(meanNll);
}

/**
 * Token-weighted mean NLL over batches (Σ nll_sum / Σ tokens), the quantity to pass to `perplexity`
 * when batches hold different numbers of tokens. Throws when no token was counted.
 */
export function meanNll(batches: readonly { nllSum: number; tokens: number }[]): number {
  let nll = 0;
  let tokens = 0;
  for (const b of batches) {
    nll += b.nllSum;
    tokens += b.tokens;
  }
  if (tokens === 0) throw new Error('meanNll: no tokens');
  return nll / tokens;
}
