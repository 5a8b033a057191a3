// The files beside a model's weights that make a directory usable on its own (tokenizer, image
// processor, generation defaults): copied next to a saved fine-tuned or merged model.

import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';

export const MODEL_ASSET_FILES: readonly string[] = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
  'vocab.txt',
  'preprocessor_config.json',
  'generation_config.json',
];

/** Copies whichever asset files `from` has into `to`. */
export function copyModelAssets(from: string, to: string): void {
  for (const f of MODEL_ASSET_FILES) if (existsSync(join(from, f))) copyFileSync(join(from, f), join(to, f));
}
