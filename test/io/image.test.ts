// Image decoding and preprocessing without Python references: format detection, errors naming the file
// (unknown format, truncated or corrupt PNG/JPEG), resize invariants, preprocessor_config.json parsing
// and the [B, 3, H, W] tensors. Pixel-exact parity with Pillow is in image-parity.test.ts.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { IoError } from '../../src/io/errors.js';
import { decodeJpegTurbo } from '../../src/io/image-jpeg.js';
import {
  MAX_IMAGE_PIXELS,
  Resample,
  VIT_DEFAULTS,
  decodeImage,
  imageToTensor,
  imagesToTensor,
  loadImageProcessorConfig,
  loadImagesTensor,
  outputSize,
  parseImageProcessorConfig,
  preprocessImage,
  readImage,
  resizeImage,
} from '../../src/io/image.js';

const FIXTURES = join(fileURLToPath(new URL('../../../', import.meta.url)), 'test', 'parity', 'fixtures', 'images');
const tmp = mkdtempSync(join(tmpdir(), 'vera-img-'));
const png = (name: string) => readFileSync(join(FIXTURES, name));

const isIoErrorFor = (file: string, re: RegExp) => (e: unknown) =>
  e instanceof IoError && e.file === file && re.test(e.message);

describe('decodeImage errors name the file', () => {
  test('unknown formats, with a hint of what the bytes are', () => {
    assert.throws(
      () => decodeImage(Buffer.from('GIF89a....'), 'a.gif'),
      isIoErrorFor('a.gif', /a\.gif: unknown image format \(GIF\)/),
    );
    assert.throws(() => decodeImage(new Uint8Array(0), 'e.png'), isIoErrorFor('e.png', /empty file/));
    assert.throws(() => decodeImage(Buffer.from('hello world'), 'x.bin'), /first bytes 68 65 6c 6c/);
  });

  test('a missing file', () => {
    const p = join(tmp, 'nope.png');
    assert.throws(() => readImage(p), isIoErrorFor(p, /cannot read: ENOENT/));
  });

  test('truncated and corrupt PNG', () => {
    const bytes = png('rgb_37x23.png');
    const cut = join(tmp, 'cut.png');
    writeFileSync(cut, bytes.subarray(0, bytes.length >> 1));
    assert.throws(() => readImage(cut), isIoErrorFor(cut, /corrupt or truncated PNG/));
    const bad = Buffer.from(bytes);
    bad[bad.length - 20] ^= 0xff; // inside the IDAT data or its CRC
    const badPath = join(tmp, 'bad.png');
    writeFileSync(badPath, bad);
    assert.throws(() => readImage(badPath), isIoErrorFor(badPath, /corrupt or truncated PNG/));
  });

  test('truncated and corrupt JPEG', () => {
    const bytes = png('rgb444_41x27.jpg');
    const cut = join(tmp, 'cut.jpg');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 200));
    assert.throws(() => readImage(cut), isIoErrorFor(cut, /truncated JPEG/));
    const junk = Buffer.concat([bytes.subarray(0, 4), Buffer.alloc(50, 0x55), Buffer.from([0xff, 0xd9])]);
    assert.throws(() => decodeImage(junk, 'junk.jpg'), isIoErrorFor('junk.jpg', /corrupt JPEG/));
  });
});

describe('decoder robustness', () => {
  test('many corrupt JPEGs in a row leave the libjpeg-turbo decoder working and exact', () => {
    const good = png('rgb420_40x30.jpg');
    const want = readImage(join(FIXTURES, 'rgb420_40x30.jpg')).data;
    const bad = Buffer.from(good);
    for (let i = 700; i < 900; i++) bad[i] = (i * 7) & 0xff;
    for (let k = 0; k < 300; k++) assert.throws(() => decodeJpegTurbo(bad), /libjpeg-turbo/);
    assert.deepEqual(decodeJpegTurbo(good)!.data, want);
  });

  test("Pillow's decompression-bomb limit is checked from the PNG header, before inflating", () => {
    const bytes = Buffer.from(png('rgb_37x23.png'));
    bytes.writeUInt32BE(100_000, 16);
    bytes.writeUInt32BE(100_000, 20);
    assert.throws(
      () => decodeImage(bytes, 'huge.png'),
      isIoErrorFor('huge.png', new RegExp(`100000×100000 exceeds the ${MAX_IMAGE_PIXELS}-pixel limit`)),
    );
  });
});

describe('resizeImage', () => {
  const solid = (w: number, h: number, rgb: [number, number, number]) => ({
    width: w,
    height: h,
    channels: 3,
    data: Uint8Array.from({ length: w * h * 3 }, (_, i) => rgb[i % 3]!),
  });

  test('a constant image stays constant under every filter, up and down', () => {
    for (const f of Object.values(Resample)) {
      for (const [w, h] of [
        [5, 3],
        [40, 31],
      ]) {
        const out = resizeImage(solid(17, 13, [10, 128, 250]), w!, h!, f);
        assert.ok(
          out.data.every((v, i) => v === [10, 128, 250][i % 3]),
          `filter ${f} to ${w}×${h}`,
        );
      }
    }
  });

  test('same size is a copy; bad sizes and filters are errors', () => {
    const img = solid(4, 4, [1, 2, 3]);
    const same = resizeImage(img, 4, 4, Resample.BICUBIC);
    assert.deepEqual(same.data, img.data);
    assert.notEqual(same.data, img.data);
    assert.throws(() => resizeImage(img, 0, 4, 2), /positive integers/);
    assert.throws(() => resizeImage(img, 2, 2, 9), /unknown resample filter 9/);
  });
});

describe('preprocessor_config.json', () => {
  test("defaults are ViTImageProcessor's; size as an integer; errors name the file and field", () => {
    const c = parseImageProcessorConfig({});
    assert.deepEqual(c, VIT_DEFAULTS);
    assert.deepEqual(parseImageProcessorConfig({ size: 384 }).size, { height: 384, width: 384 });
    assert.throws(
      () => parseImageProcessorConfig({ image_mean: [1, 2] }, 'p.json'),
      isIoErrorFor('p.json', /"image_mean" must be a number or a list of 3/),
    );
    assert.throws(() => parseImageProcessorConfig({ resample: 7 }, 'p.json'), /"resample" must be a Pillow filter id/);
    assert.throws(() => parseImageProcessorConfig({ do_center_crop: true }, 'p.json'), /"crop_size" must be given/);
    assert.throws(() => parseImageProcessorConfig({ size: { longest_edge: 5 } }, 'p.json'), /"size" must be/);
  });

  test("loadImageProcessorConfig reads a directory's file, or names the missing one", () => {
    writeFileSync(
      join(tmp, 'preprocessor_config.json'),
      JSON.stringify({ size: { height: 8, width: 6 }, resample: 3 }),
    );
    const c = loadImageProcessorConfig(tmp);
    assert.deepEqual(c.size, { height: 8, width: 6 });
    assert.equal(c.resample, 3);
    const missing = join(tmp, 'sub');
    assert.throws(() => loadImageProcessorConfig(missing), /sub: not found/);
  });

  test('shortest-edge sizes keep the aspect ratio (int truncation), as transformers does', () => {
    const cfg = parseImageProcessorConfig({ size: { shortest_edge: 14 } });
    assert.deepEqual(outputSize(37, 23, cfg), { height: 14, width: 22 });
    assert.deepEqual(outputSize(23, 37, cfg), { height: 22, width: 14 });
  });
});

describe('tensors', () => {
  const img = readImage(join(FIXTURES, 'rgb_37x23.png'));
  const cfg = parseImageProcessorConfig({ size: { height: 12, width: 20 } });

  test('imageToTensor: f32 [1, 3, H, W], channels first, normalized to [-1, 1]', () => {
    const t = imageToTensor(img, cfg);
    assert.deepEqual(t.shape, [1, 3, 12, 20]);
    assert.equal(t.dtype, 'f32');
    const values = t.toNumbers();
    assert.deepEqual(values, Array.from(preprocessImage(img, cfg)));
    assert.ok(values.every((v) => v >= -1 && v <= 1));
    t.dispose();
  });

  test('imagesToTensor / loadImagesTensor: a batch; mismatched output sizes are an error', () => {
    const t = loadImagesTensor([join(FIXTURES, 'rgb_37x23.png'), join(FIXTURES, 'gray_29x31.png')], cfg);
    assert.deepEqual(t.shape, [2, 3, 12, 20]);
    t.dispose();
    const byEdge = parseImageProcessorConfig({ size: { shortest_edge: 10 } });
    assert.throws(
      () => imagesToTensor([img, readImage(join(FIXTURES, 'gray_29x31.png'))], byEdge),
      /image 1 comes out 10×10, image 0 10×16/,
    );
    assert.throws(() => imagesToTensor([], cfg), /empty batch/);
  });

  test('no resize, no rescale: raw values normalized only', () => {
    const raw = preprocessImage(
      img,
      parseImageProcessorConfig({ do_resize: false, do_rescale: false, do_normalize: false }),
    );
    assert.equal(raw.length, 3 * 37 * 23);
    assert.equal(raw[0], img.data[0]);
    assert.equal(raw[37 * 23], img.data[1]);
  });
});
