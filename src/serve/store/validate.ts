// Checking an uploaded adapter before it is stored.
//
//   checkAdapterFiles(name, files)        structure only, every store runs it in put(): adapter_config.json
//                                         a JSON object with peft_type "VERA" or "LORA", and
//                                         adapter_model.safetensors a valid safetensors file (header,
//                                         offsets, sizes), as the safetensors reader checks it
//   baseModelValidator(modelDir, opts)    an AdapterValidator that loads the adapter onto the base model
//                                         exactly as serving loads it (adapters/load.ts: the base in the
//                                         class the adapter needs, then PeftModel.fromPretrained), so an
//                                         adapter for another base, with other target modules, another r
//                                         or a wrong head is refused with the loader's own reason. The
//                                         adapter is then deleted and unloaded: the base is left as it was
//                                         (its modules, its head). Bases are loaded once per head shape and
//                                         kept; pass it to openStore(spec, { validate }).
//
// A refusal is a StoreError 'invalid' (HTTP 422): `adapter "NAME" refused: <the loader's reason>`, the
// file named as the upload names it (adapter_config.json, adapter_model.safetensors).

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { adapterHead, loadBaseFor } from '../../adapters/load.js';
import { PeftModel } from '../../adapters/peft-model.js';
import { parseJsonText } from '../../io/json.js';
import { headerLength, parseHeader } from '../../io/safetensors-header.js';
import type { PreTrainedModel } from '../../models/pretrained.js';
import type { ParameterDType } from '../../models/storage.js';
import { ADAPTER_FILES, type AdapterFiles, type AdapterValidator, StoreError } from './types.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

function refuse(name: string, reason: string, cause?: unknown): never {
  throw new StoreError('invalid', `adapter "${name}" refused: ${reason}`, { cause });
}

/** Structural checks of the two files (see the file comment); throws StoreError 'invalid'. */
export function checkAdapterFiles(name: string, files: AdapterFiles): void {
  if (files === null || typeof files !== 'object') refuse(name, 'no files given');
  for (const f of ADAPTER_FILES)
    if (!(files[f] instanceof Uint8Array)) refuse(name, `${f} is missing (an adapter is ${ADAPTER_FILES.join(' + ')})`);
  const extra = Object.keys(files).filter((f) => !(ADAPTER_FILES as readonly string[]).includes(f));
  if (extra.length > 0)
    refuse(name, `unexpected file ${JSON.stringify(extra[0])} (an adapter is ${ADAPTER_FILES.join(' + ')})`);
  const configBytes = files['adapter_config.json'];
  let text: string;
  try {
    text = utf8.decode(configBytes);
  } catch (e) {
    refuse(name, 'adapter_config.json is not valid UTF-8 text', e);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let config: unknown;
  try {
    config = parseJsonText(text, 'adapter_config.json', 'json');
  } catch (e) {
    refuse(name, (e as Error).message, e);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config))
    refuse(name, 'adapter_config.json must hold a JSON object');
  const peftType = (config as Record<string, unknown>)['peft_type'];
  if (peftType !== 'VERA' && peftType !== 'LORA')
    refuse(name, `adapter_config.json: peft_type is ${JSON.stringify(peftType)}; vera-ts serves "VERA" and "LORA"`);
  const weights = files['adapter_model.safetensors'];
  const file = 'adapter_model.safetensors';
  try {
    const n = headerLength(weights.subarray(0, 8), weights.byteLength, file);
    parseHeader(weights.subarray(8, 8 + n), weights.byteLength - 8 - n, file);
  } catch (e) {
    refuse(name, (e as Error).message, e);
  }
}

export interface BaseValidatorOptions {
  /** Storage of the base's weights while validating (default f32; bf16 halves the memory). */
  dtype?: ParameterDType;
}

/** An AdapterValidator over the base model in `modelDir` (see the file comment), plus close(). */
export interface BaseModelValidator extends AdapterValidator {
  /** Frees the bases it loaded. */
  close(): void;
}

export function baseModelValidator(modelDir: string, opts: BaseValidatorOptions = {}): BaseModelValidator {
  const dtype = opts.dtype ?? 'f32';
  // The base as saved, loaded now so that a bad model directory fails here, not as an adapter's fault.
  const bases = new Map<string, PreTrainedModel>([['', loadBaseFor(modelDir, null, { dtype })]]);
  const validate = (name: string, files: AdapterFiles): void => {
    const dir = mkdtempSync(join(tmpdir(), 'vera-upload-'));
    // The loader's messages name the temporary files; the upload's own file names replace them.
    const clean = (msg: string) => msg.replaceAll(`${dir}${sep}`, '').replaceAll(dir, `adapter "${name}"`);
    try {
      for (const f of ADAPTER_FILES) writeFileSync(join(dir, f), files[f]);
      let base: PreTrainedModel;
      try {
        const head = adapterHead(dir);
        const key = head === null ? '' : `head:${head.numLabels}`;
        base = bases.get(key) ?? loadBaseFor(modelDir, dir, { dtype });
        bases.set(key, base);
      } catch (e) {
        refuse(name, clean((e as Error).message), e);
      }
      let peft: PeftModel<PreTrainedModel>;
      try {
        peft = PeftModel.fromPretrained(base, dir, { adapterName: 'validate' });
      } catch (e) {
        refuse(name, clean((e as Error).message), e);
      }
      // Delete first, so unload() puts back the base's own modules (a head, say), not the adapter's copies.
      peft.deleteAdapter('validate');
      peft.unload();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  return Object.assign(validate, {
    close() {
      for (const m of bases.values()) m.dispose();
      bases.clear();
    },
  });
}
