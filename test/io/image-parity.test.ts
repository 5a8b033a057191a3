// Image parity with Pillow and transformers: decoding to RGB (convert("RGB")), Image.resize for every
// Pillow filter, and ViT/CLIP pixel_values, against test/parity/fixtures/images/images.json (written by
// test/parity/gen_images.py). Decoding, resizing and preprocessing must all be bit-exact.

import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import {
  type RgbImage,
  parseImageProcessorConfig,
  preprocessImage,
  readImage,
  resizeImage,
} from '../../src/io/image.js';

const DIR = join(fileURLToPath(new URL('../../../', import.meta.url)), 'test', 'parity', 'fixtures', 'images');
const FILE = join(DIR, 'images.json');

interface Fixture {
  generator: Record<string, string>;
  files: Record<string, string>;
  decoded: Record<string, { mode: string; width: number; height: number; rgb: number[] }>;
  resize: { image: string; filter: string; resample: number; width: number; height: number; rgb: number[] }[];
  pixel_values: {
    image: string;
    config: Record<string, unknown>;
    shape: number[];
    pil: number[];
    transformers: {
      class?: string;
      error?: string;
      max_abs_diff_to_pil?: number;
      pixel_values?: number[];
      shape?: number[];
    };
  }[];
}

const fx = existsSync(FILE) ? (JSON.parse(readFileSync(FILE, 'utf8')) as Fixture) : null;
const skip =
  fx === null ? 'fixture test/parity/fixtures/images/images.json missing (run test/parity/gen_images.py)' : false;

/** The RGB image Pillow decoded (exact input for the resize and preprocessing checks). */
const pilImage = (name: string): RgbImage => {
  const d = fx!.decoded[name]!;
  return { width: d.width, height: d.height, channels: 3, data: Uint8Array.from(d.rgb) };
};

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe('image parity with Pillow', { skip }, () => {
  test('PNG decoding equals Image.open(f).convert("RGB") exactly (RGB, grey, RGBA, palette+tRNS, 16-bit, 1-bit)', () => {
    for (const [name, d] of Object.entries(fx!.decoded)) {
      if (!name.endsWith('.png')) continue;
      const img = readImage(join(DIR, name));
      assert.equal(img.width, d.width, name);
      assert.equal(img.height, d.height, name);
      assert.deepEqual(Array.from(img.data), d.rgb, `${name} (${d.mode}: ${fx!.files[name]})`);
    }
  });

  test('JPEG decoding equals Pillow (libjpeg-turbo) exactly: 4:4:4, 4:2:0, greyscale', () => {
    for (const [name, d] of Object.entries(fx!.decoded)) {
      if (!name.endsWith('.jpg')) continue;
      const img = readImage(join(DIR, name));
      assert.equal(img.width, d.width, name);
      assert.equal(img.height, d.height, name);
      assert.equal(maxDiff(img.data, d.rgb), 0, `${name} (${fx!.files[name]})`);
    }
  });

  test('resizeImage equals Image.resize for every filter (bit-exact)', () => {
    for (const r of fx!.resize) {
      const out = resizeImage(pilImage(r.image), r.width, r.height, r.resample);
      assert.equal(out.width, r.width);
      assert.equal(out.height, r.height);
      const got = Array.from(out.data);
      if (JSON.stringify(got) !== JSON.stringify(r.rgb)) {
        assert.fail(`${r.image} → ${r.width}×${r.height} ${r.filter}: max difference ${maxDiff(got, r.rgb)}`);
      }
    }
  });

  test('pixel_values equal the Pillow-path preprocessing exactly (float32)', () => {
    for (const c of fx!.pixel_values) {
      const cfg = parseImageProcessorConfig(c.config, 'fixture config');
      const got = preprocessImage(pilImage(c.image), cfg);
      assert.equal(got.length, c.pil.length, c.image);
      const want = Float32Array.from(c.pil);
      const m = maxDiff(got, want);
      assert.equal(
        m,
        0,
        `${c.image} ${JSON.stringify(c.config['size'])} resample ${c.config['resample']}: max difference ${m}`,
      );
    }
  });

  test('pixel_values from the files themselves (our decoders)', (t) => {
    for (const c of fx!.pixel_values) {
      const got = preprocessImage(readImage(join(DIR, c.image)), parseImageProcessorConfig(c.config));
      const m = maxDiff(got, Float32Array.from(c.pil));
      if (c.image.endsWith('.png')) assert.equal(m, 0, c.image);
      else
        t.diagnostic(
          `${c.image} ${JSON.stringify(c.config['size'])}: max |ours − Pillow| after preprocessing = ${m.toExponential(3)} (JPEG decoder)`,
        );
    }
  });

  test("transformers' own processors: within one uint8 level (transformers 5 no longer resizes through Pillow)", (t) => {
    for (const c of fx!.pixel_values) {
      const tr = c.transformers;
      if (tr.error !== undefined || tr.max_abs_diff_to_pil === undefined) continue;
      const std = Math.min(...(c.config['image_std'] as number[]));
      const level = 1 / 255 / std + 1e-6;
      assert.ok(
        tr.max_abs_diff_to_pil <= level,
        `${c.image}: transformers differs from Pillow by ${tr.max_abs_diff_to_pil}`,
      );
      if (tr.pixel_values) {
        const m = maxDiff(preprocessImage(pilImage(c.image), parseImageProcessorConfig(c.config)), tr.pixel_values);
        assert.ok(m <= level, `${c.image}: ours vs ${tr.class}: ${m}`);
        t.diagnostic(
          `${c.image} vs ${tr.class}: max difference ${m.toExponential(3)} (one level = ${level.toExponential(3)})`,
        );
      }
    }
  });
});
