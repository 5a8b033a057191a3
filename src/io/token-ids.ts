// Host-side validation of token ids where they are made, before they reach a backend.

/**
 * Checks token ids on the host, where they are made (tokenizer output, a user's list, collated batches):
 * a device backend reports an embedding id out of range only late, if at all (see backend.ts), so a bad
 * one is refused here, naming `what`, the id and its position. Without a vocabulary size only the form
 * (a non-negative i32) is checked.
 */
export function checkTokenIds(ids: ArrayLike<number>, vocabSize: number | undefined, what: string): void {
  const size = vocabSize ?? 0x80000000;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!(Number.isInteger(id) && id >= 0 && id < size))
      throw new RangeError(
        `${what}: token id ${id} at position ${i} is ${vocabSize === undefined ? 'not a token id' : `outside the model's vocabulary (vocab_size ${vocabSize})`}`,
      );
  }
}
