// The base model an engine serves, loaded as AdapterServer's constructor loads it (moved from there): the
// class an adapter with a classification head needs (loadBaseFor: a causal-LM base gets its family's
// classifier, sized by that head), in eval mode, with the padding id and position limit of the model and
// its tokenizer. The head adapter comes as files (from the AdapterSource), written to a temporary folder
// for loadBaseFor.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadBaseFor } from '../../adapters/load.js';
import type { Backend } from '../../backends/backend.js';
import { readJsonFile } from '../../io/json.js';
import { Tokenizer, hasTokenizerFiles } from '../../io/tokenizer.js';
import { asConfigObject } from '../../models/config-utils.js';
import type { PreTrainedModel } from '../../models/pretrained.js';
import type { ParameterDType } from '../../models/storage.js';
import { defaultMaxLength, padIdFor } from '../../models/text-inputs.js';

export interface EngineModel {
  model: PreTrainedModel;
  padId: number;
  /** Most tokens a text input may have (undefined: no limit known). */
  maxLength: number | undefined;
}

export function loadEngineModel(
  modelDir: string,
  head: Record<string, Uint8Array> | null,
  opts: { dtype?: ParameterDType; backend?: Backend } = {},
): EngineModel {
  const tokenizer = hasTokenizerFiles(modelDir) ? Tokenizer.fromDir(modelDir) : null;
  const configFile = join(modelDir, 'config.json');
  const config = asConfigObject(readJsonFile(configFile), configFile);
  const padId = padIdFor(config, tokenizer);
  const maxLength = defaultMaxLength(config, tokenizer);
  const load = { padTokenId: padId, dtype: opts.dtype ?? 'f32', ...(opts.backend ? { backend: opts.backend } : {}) };
  if (head === null) return { model: loadBaseFor(modelDir, null, load).eval(), padId, maxLength };
  const dir = mkdtempSync(join(tmpdir(), 'vera-engine-head-'));
  try {
    for (const [f, bytes] of Object.entries(head)) writeFileSync(join(dir, f), bytes);
    return { model: loadBaseFor(modelDir, dir, load).eval(), padId, maxLength };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
