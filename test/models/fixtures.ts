// The reference model fixtures (test/parity/fixtures/models, written by gen_models.py): their refs,
// inputs as tensors, a tolerance check that reports the worst element, and temp-dir copies to break.

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../../src/backends/backend.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import type { ModelInputs } from '../../src/models/pretrained.js';
import { tensor } from '../../src/tensor/creation.js';
import type { Tensor } from '../../src/tensor/tensor.js';

export const MODELS = fileURLToPath(new URL('../../../test/parity/fixtures/models/', import.meta.url));

export interface Case {
  name: string;
  class: string;
  dir: string;
  keys: string[];
}

export interface Refs {
  class: string;
  inputs: Record<string, number[]>;
  input_shapes: Record<string, number[]>;
  logits: number[];
  logits_shape: number[];
  greedy_prompt?: number[];
  greedy_tokens?: number[];
  greedy_margins?: number[];
}

export const manifest = JSON.parse(readFileSync(join(MODELS, 'manifest.json'), 'utf8')) as { cases: Case[] };
export const caseDir = (name: string): string => join(MODELS, name);

/** A preprocessor_config.json for the ViT fixture (image_size 16), as transformers' ViTImageProcessor writes it. */
export const VIT_PREPROCESSOR = JSON.stringify({
  image_processor_type: 'ViTImageProcessor',
  do_resize: true,
  size: { height: 16, width: 16 },
  resample: 2,
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  image_mean: [0.5, 0.5, 0.5],
  image_std: [0.5, 0.5, 0.5],
});
export const refsOf = (name: string): Refs => JSON.parse(readFileSync(join(MODELS, name, 'refs.json'), 'utf8')) as Refs;

const INPUT_NAMES: Record<string, keyof ModelInputs> = {
  input_ids: 'inputIds',
  attention_mask: 'attentionMask',
  token_type_ids: 'tokenTypeIds',
  pixel_values: 'pixelValues',
};

/** The refs' inputs as ModelInputs tensors on `backend`. */
export function refInputs(refs: Refs, backend: Backend): ModelInputs {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(refs.inputs)) {
    const float = k === 'pixel_values';
    out[INPUT_NAMES[k]!] = tensor(float ? Float32Array.from(v) : Int32Array.from(v), {
      dtype: float ? 'f32' : 'i32',
      shape: refs.input_shapes[k]!,
      backend,
    });
  }
  return out as ModelInputs;
}

/** The worst element under |got − want| ≤ atol + rtol·|want|, and the largest absolute error. */
export function worstError(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number) {
  assert.equal(got.length, want.length, 'element counts differ');
  let worst = { index: -1, err: 0, excess: -Infinity, got: NaN, want: NaN };
  let maxAbs = 0;
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    maxAbs = Math.max(maxAbs, err);
    const excess = err - (atol + rtol * Math.abs(want[i]!));
    if (!(excess <= worst.excess) || Number.isNaN(err)) worst = { index: i, err, excess, got: got[i]!, want: want[i]! };
  }
  return { ...worst, maxAbs, ok: worst.excess <= 0 };
}

/** Asserts closeness, naming the worst element; returns the largest absolute error. */
export function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, atol: number, rtol: number, what: string) {
  const w = worstError(got, want, atol, rtol);
  assert.ok(
    w.ok,
    `${what}: worst element ${w.index} is ${w.got}, reference ${w.want} (|error| ${w.err.toExponential(3)} > ${atol} + ${rtol}·|ref|)`,
  );
  return w.maxAbs;
}

/** A fresh temp directory, removed by the returned cleanup function. */
export function tempDir(prefix = 'vera-models-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A copy of fixture `name` in `dir` with its tensors and config edited: `tensors` receives the
 * fixture's tensors by name and returns the ones to write; `config` edits config.json.
 */
export function editedCopy(
  name: string,
  dir: string,
  backend: Backend,
  edit: {
    tensors?: (t: Map<string, Tensor>) => Map<string, Tensor>;
    config?: (c: Record<string, unknown>) => Record<string, unknown>;
  },
): string {
  const src = caseDir(name);
  cpSync(join(src, 'config.json'), join(dir, 'config.json'));
  if (edit.config) {
    const c = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'config.json'), JSON.stringify(edit.config(c), null, 2));
  }
  const ckpt = Checkpoint.open(src);
  try {
    const keep = (n: string) => (ckpt.info(n).dtype === 'BF16' ? 'bf16' : undefined); // write BF16 back as BF16
    let tensors = new Map(ckpt.names().map((n) => [n, ckpt.tensor(n, { backend, dtype: keep(n) })]));
    if (edit.tensors) tensors = edit.tensors(tensors);
    writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    for (const t of tensors.values()) t.dispose();
  } finally {
    ckpt.close();
  }
  return dir;
}
