// Adapters and merged models written by vera-ts, for the reverse parity check: gen_adapters.py
// --check-ours loads each with PEFT/transformers and records whether it gives our logits
// (fixtures/ours/peft-check.json). Everything here is seeded, so the test can rebuild the files and
// require them to be byte-identical to the ones PEFT checked.
//
// Write the fixtures: node dist/test/parity/ours.js

import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type AdapterConfig, getPeftModel, loraConfig, veraConfig } from '../../src/adapters/index.js';
import type { PeftModel } from '../../src/adapters/peft-model.js';
import { noGrad } from '../../src/autograd/graph.js';
import { loadModel } from '../../src/models/auto.js';
import { tensor } from '../../src/tensor/creation.js';
import { Generator, manualSeed } from '../../src/tensor/random.js';
import { scope } from '../../src/tensor/scope.js';
import { caseDir, refInputs, refsOf } from '../models/fixtures.js';

export const OURS = fileURLToPath(new URL('../../../test/parity/fixtures/ours/', import.meta.url));

export interface OursCase {
  name: string;
  base: string;
  config: () => AdapterConfig;
  /** Also write the merged model (mergeAndUnload + savePretrained). */
  merged?: boolean;
}

export const OURS_CASES: readonly OursCase[] = [
  {
    name: 'gpt2-vera',
    base: 'gpt2-lm',
    config: () => veraConfig({ r: 8, target_modules: ['c_attn', 'c_proj', 'c_fc'], projection_prng_key: 3 }),
    merged: true,
  },
  {
    name: 'llama-vera-seed-only',
    base: 'llama-lm',
    config: () =>
      veraConfig({
        r: 16,
        target_modules: ['q_proj', 'v_proj', 'down_proj'],
        save_projection: false,
        projection_prng_key: 77,
      }),
    merged: true,
  },
  {
    name: 'llama-bf16-vera',
    base: 'llama-tied-bf16',
    config: () => veraConfig({ r: 8, target_modules: ['k_proj', 'o_proj'], projection_prng_key: 9 }),
  },
  {
    name: 'bert-seqcls-vera',
    base: 'bert-seqcls',
    config: () => veraConfig({ r: 8, target_modules: ['query', 'value'], task_type: 'SEQ_CLS' }),
  },
  {
    name: 'vit-vera-head',
    base: 'vit-imgcls',
    config: () => veraConfig({ r: 8, target_modules: ['q_proj', 'v_proj'], modules_to_save: ['classifier'] }),
  },
  {
    name: 'roberta-seqcls-lora',
    base: 'roberta-seqcls',
    config: () => loraConfig({ r: 4, lora_alpha: 8, target_modules: ['query', 'value'], task_type: 'SEQ_CLS' }),
  },
  {
    name: 'qwen2-lora-rslora',
    base: 'qwen2-lm',
    config: () =>
      loraConfig({ r: 4, lora_alpha: 16, use_rslora: true, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] }),
  },
  {
    // A VeRA-paper ablation (vera-ts only, under vera_ts_experimental, which PEFT ignores): the file must
    // still load in PEFT with our logits, its Kaiming-normal projections read from the file.
    name: 'gpt2-vera-ablation',
    base: 'gpt2-lm',
    config: () =>
      veraConfig({
        r: 8,
        target_modules: ['c_attn', 'c_fc'],
        projection_prng_key: 5,
        experimental: { train_d: false, projection_init: 'kaiming_normal' },
      }),
  },
];

/** Gives every trainable tensor seeded values (an identity adapter would test nothing). */
function randomize(peft: PeftModel, seed: number): void {
  const g = new Generator(seed);
  noGrad(() => {
    for (const [name, t] of peft.trainableParameters()) {
      const v = tensor(g.uniform(t.numel, -0.5, 0.5), { shape: t.shape, backend: t.backend });
      t.backend.copy(t.view(name), v.view(name));
      v.dispose();
    }
  });
}

/** Builds one case's adapter, writes it (and the merged model) under `dir`, returns our logits. */
export function writeCase(c: OursCase, dir: string, index: number): { adapted: number[]; merged: number[] | null } {
  manualSeed(1234 + index); // LoRA's A draws from the default generator
  const base = loadModel(caseDir(c.base));
  const peft = getPeftModel(base, c.config());
  randomize(peft, 4321 + index);
  const inputs = refInputs(refsOf(c.base), base.parameters()[0]!.backend);
  const logits = () => noGrad(() => scope(() => peft.forward(inputs as never).toNumbers()));
  const adapted = logits();
  mkdirSync(join(dir, c.name), { recursive: true });
  peft.savePretrained(join(dir, c.name));
  let merged: number[] | null = null;
  if (c.merged) {
    const model = peft.mergeAndUnload() as typeof base;
    merged = noGrad(() => scope(() => model.forward(inputs).toNumbers()));
    model.savePretrained(join(dir, `${c.name}-merged`));
  }
  return { adapted, merged };
}

function main(): void {
  rmSync(OURS, { recursive: true, force: true });
  mkdirSync(OURS, { recursive: true });
  const manifest = OURS_CASES.map((c, i) => {
    const { adapted, merged } = writeCase(c, OURS, i);
    return { name: c.name, base: c.base, adapted, merged };
  });
  writeFileSync(join(OURS, 'ours.json'), JSON.stringify({ generator: 'test/parity/ours.ts', cases: manifest }));
  console.error(`wrote ${manifest.length} vera-ts adapters to ${OURS}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
