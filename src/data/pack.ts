// Packing for causal LM training: examples are concatenated into one token stream (an EOS between
// documents) and cut into blocks of blockSize, as transformers' run_clm group_texts does; no padding.

import { type Dataset, Ragged, TokenDataset } from './example.js';

/**
 * Concatenates the examples' inputIds, appending eosId after each one that does not already end with it,
 * and splits the stream into blocks of blockSize tokens; the tail shorter than a block is dropped
 * (group_texts). Labels follow the examples' own labels when they have them (so instruction data keeps
 * its −100 prompt masking; an appended EOS is a target), else equal the inputs (Example.labels is then a
 * copy of inputIds). The model or trainer
 * shifts labels by one, as transformers' causal LM loss does. A block may hold only −100 labels when
 * packing masked data. Throws when there is not a single full block.
 */
export function packSequences(ds: Dataset, blockSize: number, eosId: number): Dataset {
  if (!Number.isInteger(eosId) || eosId < 0)
    throw new RangeError(`[data] packSequences: eosId must be a token id, got ${eosId}`);
  const docs: { ids: ArrayLike<number>; labels: ArrayLike<number> | null; source?: string }[] = [];
  for (let i = 0; i < ds.length; i++) {
    const ex = ds.get(i);
    const from = ex.source === undefined ? `example ${i}` : ex.source;
    if (!ex.inputIds) throw new Error(`[data] packSequences: ${from} has no inputIds (packing is for text)`);
    if (ex.labels && ex.labels.length !== ex.inputIds.length)
      throw new Error(
        `[data] packSequences: ${from} has ${ex.labels.length} labels for ${ex.inputIds.length} inputIds`,
      );
    docs.push({
      ids: ex.inputIds,
      labels: ex.labels ?? null,
      ...(ex.source === undefined ? {} : { source: ex.source }),
    });
  }
  return packDocuments(docs, blockSize, eosId, true);
}

/** The packing behind packSequences and loadCausalText; appendEos adds eosId after each document. */
export function packDocuments(
  docs: readonly { ids: ArrayLike<number>; labels: ArrayLike<number> | null; source?: string }[],
  blockSize: number,
  eosId: number | null,
  appendEos: boolean,
): Dataset {
  if (!Number.isInteger(blockSize) || blockSize < 1)
    throw new RangeError(`[data] packing: blockSize must be a positive integer, got ${blockSize}`);
  let total = 0;
  let masked = false;
  for (const d of docs) {
    total += d.ids.length + (appendEos && needsEos(d.ids, eosId) ? 1 : 0);
    if (d.labels) masked = true;
  }
  const blocks = Math.floor(total / blockSize);
  if (blocks === 0)
    throw new Error(
      `[data] packing: ${total} tokens in all, fewer than one block of ${blockSize}; lower blockSize or add data`,
    );
  const stream = new Int32Array(blocks * blockSize);
  const labels = masked ? new Int32Array(blocks * blockSize) : null;
  const blockSource: string[] = [];
  let at = 0;
  for (const d of docs) {
    if (at >= stream.length) break;
    const eos = appendEos && needsEos(d.ids, eosId);
    const n = d.ids.length + (eos ? 1 : 0);
    for (let k = 0; k < n && at < stream.length; k++, at++) {
      if (at % blockSize === 0) blockSource.push(`${d.source ?? 'packed'} (block ${at / blockSize})`);
      const id = k < d.ids.length ? d.ids[k]! : eosId!;
      stream[at] = id;
      if (labels) labels[at] = k < d.ids.length ? (d.labels ? d.labels[k]! : id) : eosId!;
    }
  }
  const inputIds = new Ragged();
  const labelRows = labels ? new Ragged() : undefined;
  for (let b = 0; b < blocks; b++) {
    inputIds.push(stream.subarray(b * blockSize, (b + 1) * blockSize));
    labelRows?.push(labels!.subarray(b * blockSize, (b + 1) * blockSize));
  }
  return new TokenDataset({
    kind: 'causal-lm',
    inputIds,
    ...(labelRows ? { labels: labelRows } : {}),
    sources: blockSource,
  });
}

/** Whether a document needs an EOS after it (empty documents contribute nothing, not a lone EOS). */
function needsEos(ids: ArrayLike<number>, eosId: number | null): boolean {
  return eosId !== null && ids.length > 0 && ids[ids.length - 1] !== eosId;
}
