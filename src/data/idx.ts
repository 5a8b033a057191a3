// MNIST-family IDX files (gzip-compressed or raw): the unsigned-byte image and label arrays, as an image
// classification dataset whose grey images are replicated to RGB and preprocessed like any image.

import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { describeError } from '../io/errors.js';
import { type ImageProcessorConfig, VIT_DEFAULTS, preprocessImage } from '../io/image.js';
import { DataError } from './errors.js';
import { type Dataset, type Example, checkIndex } from './example.js';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** The IDX type byte → name, for messages about the types that are not supported. */
const IDX_TYPES: Record<number, string> = {
  0x08: 'unsigned byte',
  0x09: 'signed byte',
  0x0b: 'short',
  0x0c: 'int',
  0x0d: 'float',
  0x0e: 'double',
};

/**
 * Reads an IDX file of unsigned bytes (MNIST's format: 0x00 0x00 0x08 ndims, big-endian u32 dims, data),
 * gunzipping it first when it starts with the gzip magic. Errors name the file.
 */
export function readIdx(file: string): IdxArray {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new DataError(`[data] ${file}: cannot read: ${describeError(e)}`, { file, cause: e });
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new DataError(`[data] ${file}: corrupt gzip data: ${describeError(e)}`, { file, cause: e });
    }
  }
  return parseIdx(bytes, file);
}

/** Parses IDX bytes (see readIdx); `file` names the source in errors. */
export function parseIdx(bytes: Uint8Array, file: string): IdxArray {
  const fail = (why: string): never => {
    throw new DataError(`[data] ${file}: not an IDX file of unsigned bytes: ${why}`, { file });
  };
  if (bytes.length < 4) fail(`${bytes.length} bytes`);
  if (bytes[0] !== 0 || bytes[1] !== 0) fail('the magic number does not start with two zero bytes');
  const type = bytes[2]!;
  if (type !== 0x08) fail(`element type 0x${type.toString(16)} (${IDX_TYPES[type] ?? 'unknown'})`);
  const ndims = bytes[3]!;
  if (ndims === 0) fail('0 dimensions');
  const headerBytes = 4 + 4 * ndims;
  if (bytes.length < headerBytes) fail('truncated header');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const dims: number[] = [];
  for (let k = 0; k < ndims; k++) dims.push(dv.getUint32(4 + 4 * k));
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.length - headerBytes !== count)
    fail(`dims [${dims.join(', ')}] need ${count} data bytes, the file has ${bytes.length - headerBytes}`);
  return { dims, data: bytes.subarray(headerBytes) };
}

export interface IdxOpts {
  /**
   * Preprocessing (resize, rescale, normalise) of the RGB images. Default: the 28×28 images as they are,
   * rescaled by 1/255 and normalised with mean = std = 0.5 (ViT's defaults), i.e. values in [−1, 1].
   */
  processor?: ImageProcessorConfig;
  /** Only the first `limit` examples. */
  limit?: number;
  /** Class names (e.g. Fashion-MNIST's); default "0".."max label". */
  labelNames?: string[];
}

/**
 * An image classification dataset from an IDX image file [N, H, W] and an IDX label file [N]. Pixels stay
 * as bytes in memory; get(i) replicates the grey image to RGB and preprocesses it.
 */
export function loadIdx(imagesFile: string, labelsFile: string, opts: IdxOpts = {}): Dataset {
  const images = readIdx(imagesFile);
  const labels = readIdx(labelsFile);
  if (images.dims.length !== 3)
    throw new DataError(
      `[data] ${imagesFile}: expected images [N, height, width], got dims [${images.dims.join(', ')}]`,
      {
        file: imagesFile,
      },
    );
  if (labels.dims.length !== 1)
    throw new DataError(`[data] ${labelsFile}: expected labels [N], got dims [${labels.dims.join(', ')}]`, {
      file: labelsFile,
    });
  const [n, h, w] = images.dims as [number, number, number];
  if (labels.dims[0] !== n)
    throw new DataError(`[data] ${labelsFile}: ${labels.dims[0]} labels for the ${n} images of ${imagesFile}`, {
      file: labelsFile,
    });
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 0))
    throw new RangeError(`[data] loadIdx: limit must be a non-negative integer, got ${opts.limit}`);
  const count = Math.min(n, opts.limit ?? n);
  let maxLabel = -1;
  for (let i = 0; i < count; i++) maxLabel = Math.max(maxLabel, labels.data[i]!);
  const labelNames = opts.labelNames ?? Array.from({ length: maxLabel + 1 }, (_, k) => String(k));
  if (maxLabel >= labelNames.length) {
    const at = labels.data.subarray(0, count).findIndex((l) => l >= labelNames.length);
    throw new DataError(
      `[data] ${labelsFile}: label ${labels.data[at]} of example ${at} is out of range for the ${labelNames.length} labelNames`,
      { file: labelsFile },
    );
  }
  const config = opts.processor ?? { ...VIT_DEFAULTS, doResize: false };
  const plane = h * w;
  return {
    kind: 'image-classification',
    length: count,
    labelNames,
    get(i: number): Example {
      checkIndex(i, count, 'dataset.get');
      const grey = images.data.subarray(i * plane, (i + 1) * plane);
      const rgb = new Uint8Array(plane * 3);
      for (let p = 0; p < plane; p++) rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = grey[p]!;
      const pixelValues = preprocessImage({ width: w, height: h, channels: 3, data: rgb }, config);
      return { pixelValues, label: labels.data[i]!, source: `${imagesFile} #${i}` };
    },
    exampleLength: () => 0,
  };
}
