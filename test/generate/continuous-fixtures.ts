// Language-model adapters for the continuous-batching and engine tests: seeded random VeRA adapters on
// the GPT-2 fixture and LoRA adapters on the Llama fixture (an identity adapter would test nothing),
// saved in PEFT's format, and the solo reference: `generate` on a fresh base with one adapter alone.

import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { getPeftModel, loraConfig, veraConfig } from '../../src/adapters/index.js';
import { PeftModel } from '../../src/adapters/peft-model.js';
import { noGrad } from '../../src/autograd/graph.js';
import { type GenerateOptions, generate } from '../../src/generate/generate.js';
import { loadModel } from '../../src/models/auto.js';
import type { PreTrainedModel } from '../../src/models/pretrained.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator } from '../../src/tensor/random.js';
import { caseDir } from '../models/fixtures.js';

export type LmBase = 'gpt2-lm' | 'llama-lm';

/** The method each base is tested with. */
export const METHOD: Record<LmBase, 'vera' | 'lora'> = { 'gpt2-lm': 'vera', 'llama-lm': 'lora' };

/** Saves one adapter per seed under root/<base>-<seed>; returns name → directory. */
export function makeAdapters(root: string, base: LmBase, seeds: readonly number[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const seed of seeds) {
    const config =
      METHOD[base] === 'vera'
        ? veraConfig({ r: 8, target_modules: ['c_attn', 'c_fc'], fan_in_fan_out: true })
        : loraConfig({ r: 4, target_modules: ['q_proj', 'v_proj', 'down_proj'] });
    const peft = getPeftModel(loadModel(caseDir(base)), config);
    const g = new Generator(seed);
    noGrad(() => {
      for (const [, t] of peft.trainableParameters()) {
        const v = tensor(g.uniform(t.numel, -1, 1), { shape: t.shape });
        t.backend.copy(t.view('λ'), v.view('λ'));
        v.dispose();
      }
    });
    const name = `${base}-${seed}`;
    const dir = join(root, name);
    mkdirSync(dir, { recursive: true });
    peft.savePretrained(dir);
    peft.model.dispose();
    out.set(name, dir);
  }
  return out;
}

/** The base with every adapter loaded under its name, in eval mode, for mixed-adapter batches. */
export function loadAll(base: LmBase, adapters: ReadonlyMap<string, string>): PeftModel<PreTrainedModel> {
  let peft: PeftModel<PreTrainedModel> | null = null;
  for (const [name, dir] of adapters) {
    if (!peft) peft = PeftModel.fromPretrained(loadModel(caseDir(base)), dir, { adapterName: name });
    else peft.loadAdapter(dir, name);
  }
  peft!.model.eval();
  return peft!;
}

const soloModels = new Map<string, PreTrainedModel>();

/** `generate` for one prompt on a fresh base with `adapter` (a directory) alone, or the base (null). */
export function solo(base: LmBase, adapter: string | null, ids: readonly number[], opts: GenerateOptions): number[] {
  const key = `${base} ${adapter}`;
  let model = soloModels.get(key);
  if (!model) {
    model = loadModel(caseDir(base));
    if (adapter) PeftModel.fromPretrained(model, adapter);
    soloModels.set(key, model);
  }
  return generate(model, [ids], opts)[0]!;
}

/** An adapter's two files, as a store hands them out. */
export function adapterFiles(dir: string): {
  'adapter_config.json': Uint8Array;
  'adapter_model.safetensors': Uint8Array;
} {
  return {
    'adapter_config.json': new Uint8Array(readFileSync(join(dir, 'adapter_config.json'))),
    'adapter_model.safetensors': new Uint8Array(readFileSync(join(dir, 'adapter_model.safetensors'))),
  };
}
