// Image datasets: a class-per-folder tree of tiny PNGs/JPEGs written with pngjs/jpeg-js (labels, pixel
// values equal to preprocessImage's, bad files, size checks) and IDX files written here (raw and gzip).

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import { DataError } from '../../src/data/errors.js';
import { loadIdx, parseIdx } from '../../src/data/idx.js';
import { loadImageFolder } from '../../src/data/images.js';
import { type ImageProcessorConfig, VIT_DEFAULTS, preprocessImage, readImage } from '../../src/io/image.js';
import { tempDir, tempFile } from './helpers.js';

const PROCESSOR: ImageProcessorConfig = { ...VIT_DEFAULTS, size: { height: 4, width: 4 } };

/** pngjs's writer (src/io/types/pngjs.d.ts declares only the reader the library uses). */
interface PngWriter {
  new (opts: { width: number; height: number }): { data: Buffer };
  sync: { write(png: { data: Buffer }): Buffer };
}
const PNG = (pngjs as unknown as { PNG: PngWriter }).PNG;

/** A w×h RGBA PNG whose pixel (x, y) is (seed + x, seed + y, seed + x + y, 255). */
function png(w: number, h: number, seed: number): Buffer {
  const img = new PNG({ width: w, height: h });
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 4;
      img.data[o] = seed + x;
      img.data[o + 1] = seed + y;
      img.data[o + 2] = seed + x + y;
      img.data[o + 3] = 255;
    }
  return PNG.sync.write(img);
}

function jpg(w: number, h: number): Buffer {
  const data = Buffer.alloc(w * h * 4, 128);
  return jpeg.encode({ data, width: w, height: h }, 90).data;
}

function makeTree(): string {
  const root = join(tempDir(), `folder${Math.random().toString(36).slice(2)}`);
  for (const cls of ['dog', 'cat']) mkdirSync(join(root, cls), { recursive: true });
  writeFileSync(join(root, 'cat', 'a.png'), png(10, 5, 10));
  writeFileSync(join(root, 'cat', 'b.PNG'), png(3, 3, 50));
  writeFileSync(join(root, 'dog', 'c.jpg'), jpg(8, 8));
  writeFileSync(join(root, 'dog', 'd.png'), png(4, 4, 90));
  writeFileSync(join(root, 'dog', 'notes.txt'), 'ignored');
  writeFileSync(join(root, 'dog', '.hidden.png'), 'ignored');
  writeFileSync(join(root, 'README'), 'not a class');
  return root;
}

describe('loadImageFolder', () => {
  test('sorted class folders are the labels; pixels equal preprocessImage on the file', () => {
    const root = makeTree();
    const ds = loadImageFolder(root, { processor: PROCESSOR });
    assert.equal(ds.kind, 'image-classification');
    assert.deepEqual(ds.labelNames, ['cat', 'dog']);
    assert.equal(ds.length, 4);
    assert.equal(ds.skipped, 0);
    const files = [
      join(root, 'cat', 'a.png'),
      join(root, 'cat', 'b.PNG'),
      join(root, 'dog', 'c.jpg'),
      join(root, 'dog', 'd.png'),
    ];
    files.forEach((f, i) => {
      const ex = ds.get(i);
      assert.equal(ex.source, f);
      assert.equal(ex.label, i < 2 ? 0 : 1);
      assert.equal(ex.pixelValues!.length, 3 * 4 * 4);
      assert.deepEqual(ex.pixelValues, preprocessImage(readImage(f), PROCESSOR));
    });
  });

  test('shortest-edge resize + centre crop matches preprocessImage too', () => {
    const root = makeTree();
    const clip: ImageProcessorConfig = {
      ...VIT_DEFAULTS,
      size: { shortestEdge: 5 },
      doCenterCrop: true,
      cropSize: { height: 4, width: 4 },
      imageMean: [0.48, 0.46, 0.41],
      imageStd: [0.27, 0.26, 0.28],
    };
    const ds = loadImageFolder(root, { processor: clip });
    assert.deepEqual(ds.get(0).pixelValues, preprocessImage(readImage(join(root, 'cat', 'a.png')), clip));
  });

  test('a corrupt image: DataError naming it, or skipped and counted', () => {
    const root = makeTree();
    const bad = join(root, 'cat', 'broken.png');
    writeFileSync(bad, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3]));
    assert.throws(
      () => loadImageFolder(root, { processor: PROCESSOR }),
      (e: unknown) => e instanceof DataError && e.file === bad && e.message.includes(bad) && /PNG/.test(e.message),
    );
    const ds = loadImageFolder(root, { processor: PROCESSOR, onBadRow: 'skip' });
    assert.equal(ds.length, 4);
    assert.equal(ds.skipped, 1);
  });

  test('variable output sizes, no classes, missing folder are DataErrors', () => {
    const root = makeTree();
    assert.throws(
      () => loadImageFolder(root, { processor: { ...VIT_DEFAULTS, size: { shortestEdge: 4 } } }),
      (e: unknown) => e instanceof DataError && /batches need one size/.test(e.message),
    );
    const empty = join(tempDir(), 'empty-tree');
    mkdirSync(empty, { recursive: true });
    assert.throws(
      () => loadImageFolder(empty, { processor: PROCESSOR }),
      (e: unknown) => e instanceof DataError && e.file === empty && /no class subfolders/.test(e.message),
    );
    const missing = join(tempDir(), 'nope');
    assert.throws(
      () => loadImageFolder(missing, { processor: PROCESSOR }),
      (e: unknown) => e instanceof DataError && e.file === missing && /ENOENT/.test(e.message),
    );
  });
});

/** IDX bytes: magic 0 0 8 ndims, big-endian dims, data. */
function idx(dims: number[], data: number[]): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = 0x08;
  head[3] = dims.length;
  dims.forEach((d, k) => head.writeUInt32BE(d, 4 + 4 * k));
  return Buffer.concat([head, Buffer.from(data)]);
}

describe('loadIdx', () => {
  const pixels = [0, 255, 51, 102, 10, 20, 30, 40, 255, 255, 0, 0];
  const images = idx([3, 2, 2], pixels);
  const labels = idx([3], [2, 0, 1]);

  test('raw and gzip files; grey → RGB; default rescale + normalise to [−1, 1]', () => {
    const raw = loadIdx(tempFile('-images-idx3-ubyte', images), tempFile('-labels-idx1-ubyte', labels));
    const gz = loadIdx(tempFile('-images.gz', gzipSync(images)), tempFile('-labels.gz', gzipSync(labels)));
    for (const ds of [raw, gz]) {
      assert.equal(ds.kind, 'image-classification');
      assert.equal(ds.length, 3);
      assert.deepEqual(ds.labelNames, ['0', '1', '2']);
      assert.deepEqual(
        [0, 1, 2].map((i) => ds.get(i).label),
        [2, 0, 1],
      );
      const px = ds.get(0).pixelValues!;
      assert.equal(px.length, 12);
      const expect = [0, 255, 51, 102].map((v) => Math.fround(Math.fround(Math.fround(v / 255) - 0.5) / 0.5));
      assert.deepEqual(Array.from(px), [...expect, ...expect, ...expect]);
    }
  });

  test('processor resize, limit, labelNames', () => {
    const ds = loadIdx(tempFile('.idx', images), tempFile('.idx', labels), {
      processor: PROCESSOR,
      limit: 2,
      labelNames: ['a', 'b', 'c'],
    });
    assert.equal(ds.length, 2);
    assert.deepEqual(ds.labelNames, ['a', 'b', 'c']);
    const rgb = new Uint8Array(12);
    [10, 20, 30, 40].forEach((v, p) => rgb.fill(v, 3 * p, 3 * p + 3));
    assert.deepEqual(
      ds.get(1).pixelValues,
      preprocessImage({ width: 2, height: 2, channels: 3, data: rgb }, PROCESSOR),
    );
    assert.throws(() => ds.get(2), RangeError);
  });

  test('errors name the file', () => {
    const imgFile = tempFile('.idx', images);
    const short = tempFile('.idx', idx([2], [0, 1]));
    assert.throws(
      () => loadIdx(imgFile, short),
      (e: unknown) => e instanceof DataError && e.file === short && /2 labels for the 3 images/.test(e.message),
    );
    const trunc = tempFile('.idx', images.subarray(0, images.length - 1));
    assert.throws(
      () => loadIdx(trunc, short),
      (e: unknown) =>
        e instanceof DataError && e.file === trunc && /need 12 data bytes, the file has 11/.test(e.message),
    );
    assert.throws(() => parseIdx(Buffer.from([1, 2, 8, 1]), 'x.idx'), /x\.idx: .*magic/);
    assert.throws(() => parseIdx(Buffer.from([0, 0, 0x0d, 1, 0, 0, 0, 0]), 'f.idx'), /0xd \(float\)/);
    const badGz = tempFile('.gz', Buffer.from([0x1f, 0x8b, 1, 2, 3]));
    assert.throws(
      () => loadIdx(badGz, short),
      (e: unknown) => e instanceof DataError && e.file === badGz && /corrupt gzip/.test(e.message),
    );
    assert.throws(
      () => loadIdx(imgFile, tempFile('.idx', labels), { labelNames: ['a'] }),
      /label 2 of example 0 is out of range for the 1 labelNames/,
    );
  });
});
