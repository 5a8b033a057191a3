// loadModel(dir): config.json → the transformers class (registry) → a module skeleton → every
// checkpoint tensor loaded into its parameter, with exact checks. Parameters come back frozen
// (requiresGrad false) and the model in eval mode, as from_pretrained returns it.

import { join } from 'node:path';
import type { Backend } from '../backends/backend.js';
import { defaultBackend } from '../backends/registry.js';
import { Checkpoint } from '../io/checkpoint.js';
import { readJsonFile } from '../io/json.js';
import { NoInitGenerator } from './common.js';
import { asConfigObject } from './config-utils.js';
import type { PreTrainedModel } from './pretrained.js';
import { resolveModelClass } from './registry.js';

export interface LoadModelOptions {
  backend?: Backend;
  /**
   * Parameter dtype. Only 'f32' for now (BF16/F16 checkpoints are converted exactly); keeping frozen
   * weights in bf16 needs a GEMM that reads bf16 weights.
   */
  dtype?: 'f32';
  /** Load as this class instead of config.architectures[0] (e.g. a classification head). */
  architecture?: string;
}

export function loadModel(dir: string, opts: LoadModelOptions = {}): PreTrainedModel {
  if (opts.dtype !== undefined && opts.dtype !== 'f32')
    throw new Error(
      `[loadModel] dtype ${JSON.stringify(opts.dtype)} is not supported: parameters load as 'f32' (bf16 storage of frozen weights needs a bf16-reading GEMM)`,
    );
  const configPath = join(dir, 'config.json');
  const config = asConfigObject(readJsonFile(configPath), configPath);
  const cls = resolveModelClass(config, opts.architecture, configPath);
  const backend = opts.backend ?? defaultBackend();
  const model = cls.create(config, { backend, generator: new NoInitGenerator() });
  let ckpt: Checkpoint | null = null;
  try {
    ckpt = Checkpoint.open(dir);
    model.loadCheckpoint(ckpt, dir);
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    ckpt?.close();
  }
  model.nameOrPath = dir;
  return model.freeze().eval();
}
