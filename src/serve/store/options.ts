// What openStore takes, and the checks every store's put() runs before it stores anything.

import { checkAdapterFiles } from './validate.js';
import { ADAPTER_FILES, type AdapterFiles, type AdapterValidator, StoreError, checkName } from './types.js';

export interface OpenOptions {
  /** Runs on every put after the structural checks (e.g. baseModelValidator); a throw refuses the put. */
  validate?: AdapterValidator;
  /**
   * Fault injection for tests: called at each step of a put ('written': the new version's bytes are
   * written but not yet current). A test kills its process here to check that a crash changes nothing.
   */
  onPutStep?: (step: 'written') => void;
}

/**
 * The checks of a put, in order: the name, the owner, the files' structure, then the validator; returns
 * copies of the bytes, so a caller that reuses its buffers cannot change what is being stored.
 */
export async function prepareFiles(
  name: string,
  files: AdapterFiles,
  owner: string | null,
  opts: OpenOptions,
): Promise<AdapterFiles> {
  checkName(name);
  if (owner !== null) checkName(owner, 'owner (tenant name)');
  checkAdapterFiles(name, files);
  const copy = {} as AdapterFiles;
  for (const f of ADAPTER_FILES) copy[f] = Buffer.from(files[f]); // a Buffer: both drivers bind it as a blob
  if (opts.validate) {
    try {
      await opts.validate(name, copy);
    } catch (e) {
      if (e instanceof StoreError) throw e;
      throw new StoreError('invalid', `adapter "${name}" refused: ${(e as Error).message ?? String(e)}`, { cause: e });
    }
  }
  return copy;
}

/** A put over an adapter of another owner (or of none), without replaceOwner. */
export function ownerConflict(name: string, owner: string | null): StoreError {
  return new StoreError(
    'conflict',
    `adapter "${name}" exists with ${owner === null ? 'no owner' : 'another owner'}; it was not replaced`,
  );
}
