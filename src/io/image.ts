// Images for vision models: PNG (pngjs) and JPEG (libjpeg-turbo as WebAssembly, jpeg-js for CMYK)
// decoding to 8-bit RGB as Pillow's
// convert("RGB") gives it, and the preprocessing of transformers' image processors (ViTImageProcessor,
// CLIP-style shortest-edge resize + centre crop) from preprocessor_config.json, into f32 [B, 3, H, W] tensors.

import jpeg from 'jpeg-js';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import pngjs, { type PngMetadata } from 'pngjs';
import { type CreateOpts, tensor } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import { IoError, describeError } from './errors.js';
import { decodeJpegTurbo } from './image-jpeg.js';
import { type Image8, Resample, resizeImage } from './image-resize.js';
import { readJsonFile } from './json.js';

export { Resample, resizeImage, type Image8 } from './image-resize.js';

/** An 8-bit RGB image, 3 interleaved bytes per pixel, rows top to bottom. */
export interface RgbImage extends Image8 {
  channels: 3;
}

// ---- decoding ---------------------------------------------------------------------------------

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Pillow's decompression-bomb limit: twice Image.MAX_IMAGE_PIXELS (89,478,485) is an error there too. */
export const MAX_IMAGE_PIXELS = 2 * 89_478_485;

function checkPixels(width: number, height: number, file: string): void {
  if (width * height > MAX_IMAGE_PIXELS) {
    throw new IoError(
      `[image] ${file}: ${width}×${height} exceeds the ${MAX_IMAGE_PIXELS}-pixel limit (a decompression bomb?)`,
      { file },
    );
  }
}

/** Reads and decodes a PNG or JPEG file to RGB. Errors name the file. */
export function readImage(path: string): RgbImage {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new IoError(`[image] ${path}: cannot read: ${describeError(e)}`, { file: path, cause: e });
  }
  return decodeImage(bytes, path);
}

/**
 * Decodes PNG or JPEG bytes to RGB as Pillow's `Image.open(f).convert("RGB")` does: grey is replicated,
 * palettes are looked up, alpha and tRNS transparency are dropped (no compositing), 16-bit samples keep
 * their high byte, 16-bit grey is clipped to 255 (Pillow's I;16 → RGB), 1/2/4-bit grey is scaled to
 * 0..255. `file` names the source in errors.
 */
export function decodeImage(bytes: Uint8Array, file = '<buffer>'): RgbImage {
  if (bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return decodePng(bytes, file);
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return decodeJpeg(bytes, file);
  throw new IoError(`[image] ${file}: unknown image format (${sniff(bytes)}); PNG and JPEG are supported`, { file });
}

function sniff(b: Uint8Array): string {
  const ascii = (i: number, n: number) => String.fromCharCode(...b.subarray(i, i + n));
  if (b.length === 0) return 'empty file';
  if (ascii(0, 4) === 'GIF8') return 'GIF';
  if (ascii(0, 4) === 'RIFF' && ascii(8, 4) === 'WEBP') return 'WebP';
  if (ascii(0, 2) === 'BM') return 'BMP';
  if (ascii(4, 4) === 'ftyp') return 'an ISO media file (HEIC/AVIF?)';
  return `first bytes ${Array.from(b.subarray(0, 8), (x) => x.toString(16).padStart(2, '0')).join(' ')}`;
}

function decodePng(bytes: Uint8Array, file: string): RgbImage {
  // IHDR comes first: width and height at bytes 16..23, checked before anything is inflated.
  if (bytes.length >= 24) {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    checkPixels(dv.getUint32(16), dv.getUint32(20), file);
  }
  let png: PngMetadata;
  try {
    // tRNS is removed first: pngjs zeroes the colour of pixels matching a grey/RGB transparent colour,
    // while convert("RGB") keeps it (alpha is dropped anyway).
    png = pngjs.PNG.sync.read(Buffer.from(stripChunk(bytes, 'tRNS')), { skipRescale: true });
  } catch (e) {
    throw new IoError(`[image] ${file}: corrupt or truncated PNG: ${describeError(e)}`, { file, cause: e });
  }
  const { width, height, depth, colorType, data } = png;
  const n = width * height;
  if (data.length < n * 4)
    throw new IoError(`[image] ${file}: corrupt or truncated PNG: ${data.length} samples for ${width}×${height}`, {
      file,
    });
  const out = new Uint8Array(n * 3);
  const grey = colorType === 0 || colorType === 4;
  let conv: (v: number) => number;
  if (colorType === 3 || depth === 8) conv = (v) => v;
  else if (depth === 16) conv = colorType === 0 ? (v) => (v > 255 ? 255 : v) : (v) => v >> 8;
  else if (grey) conv = (v) => (v * 255) / ((1 << depth) - 1);
  else throw new IoError(`[image] ${file}: unsupported PNG bit depth ${depth} for colour type ${colorType}`, { file });
  for (let i = 0; i < n; i++) {
    out[i * 3] = conv(data[i * 4]!);
    out[i * 3 + 1] = conv(data[i * 4 + 1]!);
    out[i * 3 + 2] = conv(data[i * 4 + 2]!);
  }
  return { width, height, channels: 3, data: out };
}

/** The PNG with every chunk of `type` removed (the bytes unchanged when it has none or is malformed). */
function stripChunk(bytes: Uint8Array, type: string): Uint8Array {
  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  let pos = 8;
  let removed = false;
  while (pos + 12 <= bytes.length) {
    const len = ((bytes[pos]! << 24) | (bytes[pos + 1]! << 16) | (bytes[pos + 2]! << 8) | bytes[pos + 3]!) >>> 0;
    const end = pos + 12 + len;
    if (end > bytes.length) break;
    if (String.fromCharCode(...bytes.subarray(pos + 4, pos + 8)) === type) removed = true;
    else parts.push(bytes.subarray(pos, end));
    pos = end;
  }
  if (!removed) return bytes;
  parts.push(bytes.subarray(pos));
  return Buffer.concat(parts);
}

function decodeJpeg(bytes: Uint8Array, file: string): RgbImage {
  // Both decoders decode what they can of a truncated file without complaint; Pillow refuses it ("image
  // file is truncated"), so a file must end with the EOI marker (trailing zero padding allowed).
  let end = bytes.length;
  while (end > 2 && bytes[end - 1] === 0) end--;
  if (end < 4 || bytes[end - 2] !== 0xff || bytes[end - 1] !== 0xd9) {
    throw new IoError(`[image] ${file}: truncated JPEG (no end-of-image marker)`, { file });
  }
  // libjpeg-turbo decodes exactly as Pillow does; jpeg-js (close, not exact: simpler chroma upsampling and
  // colour conversion) takes over for CMYK files and for data libjpeg-turbo rejects.
  let turboError: unknown;
  try {
    const img = decodeJpegTurbo(bytes);
    if (img !== null) {
      checkPixels(img.width, img.height, file);
      return { width: img.width, height: img.height, channels: 3, data: img.data };
    }
  } catch (e) {
    if (e instanceof IoError) throw e;
    turboError = e;
  }
  let img: { width: number; height: number; data: Uint8Array };
  try {
    img = jpeg.decode(bytes, {
      useTArray: true,
      formatAsRGBA: false,
      tolerantDecoding: false,
      maxMemoryUsageInMB: 2048,
    });
  } catch (e) {
    const why =
      turboError === undefined ? describeError(e) : `${describeError(turboError)}; jpeg-js: ${describeError(e)}`;
    throw new IoError(`[image] ${file}: corrupt JPEG (${why})`, { file, cause: e });
  }
  if (img.width <= 0 || img.height <= 0 || img.data.length !== img.width * img.height * 3) {
    throw new IoError(`[image] ${file}: corrupt JPEG (decoded ${img.width}×${img.height})`, { file });
  }
  return { width: img.width, height: img.height, channels: 3, data: img.data };
}

// ---- preprocessing ----------------------------------------------------------------------------

/** The fields of preprocessor_config.json that the preprocessing uses, with transformers' ViT defaults. */
export interface ImageProcessorConfig {
  doResize: boolean;
  /** {height, width}, or {shortestEdge} (aspect kept, as CLIPImageProcessor). */
  size: { height: number; width: number } | { shortestEdge: number };
  /** Pillow filter id (2 = BILINEAR). */
  resample: number;
  doCenterCrop: boolean;
  cropSize: { height: number; width: number } | null;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
}

/** ViTImageProcessor's defaults (IMAGENET_STANDARD_MEAN/STD = 0.5). */
export const VIT_DEFAULTS: ImageProcessorConfig = {
  doResize: true,
  size: { height: 224, width: 224 },
  resample: Resample.BILINEAR,
  doCenterCrop: false,
  cropSize: null,
  doRescale: true,
  rescaleFactor: 1 / 255,
  doNormalize: true,
  imageMean: [0.5, 0.5, 0.5],
  imageStd: [0.5, 0.5, 0.5],
};

/** Reads preprocessor_config.json from a model directory (or the file itself). Errors name the file and field. */
export function loadImageProcessorConfig(dirOrFile: string): ImageProcessorConfig {
  let file = dirOrFile;
  try {
    if (statSync(dirOrFile).isDirectory()) file = join(dirOrFile, 'preprocessor_config.json');
  } catch {
    // readJsonFile reports the missing path.
  }
  if (!existsSync(file))
    throw new IoError(`[image] ${file}: not found (the image processor's preprocessor_config.json)`, { file });
  return parseImageProcessorConfig(readJsonFile(file), file);
}

/** preprocessor_config.json's object → ImageProcessorConfig (absent fields take ViT's defaults). */
export function parseImageProcessorConfig(json: unknown, file = 'preprocessor_config.json'): ImageProcessorConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new IoError(`[image] ${file}: expected a JSON object`, { file });
  const o = json as Record<string, unknown>;
  const bad = (key: string, what: string): never => {
    throw new IoError(`[image] ${file}: "${key}" must be ${what}, got ${JSON.stringify(o[key])}`, { file, key });
  };
  const bool = (key: string, d: boolean) =>
    o[key] === undefined ? d : typeof o[key] === 'boolean' ? o[key] : bad(key, 'a boolean');
  const num = (key: string, d: number) =>
    o[key] === undefined ? d : typeof o[key] === 'number' && Number.isFinite(o[key]) ? o[key] : bad(key, 'a number');
  const triple = (key: string, d: [number, number, number]): [number, number, number] => {
    const v = o[key];
    if (v === undefined) return d;
    if (typeof v === 'number') return [v, v, v];
    if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number'))
      return v as [number, number, number];
    return bad(key, 'a number or a list of 3 numbers');
  };
  const hw = (key: string, v: unknown): { height: number; width: number } | { shortestEdge: number } => {
    const posInt = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x > 0;
    if (posInt(v)) return { height: v as number, width: v as number };
    if (v !== null && typeof v === 'object') {
      const s = v as Record<string, unknown>;
      if (posInt(s['height']) && posInt(s['width']))
        return { height: s['height'] as number, width: s['width'] as number };
      if (posInt(s['shortest_edge']) && s['longest_edge'] === undefined)
        return { shortestEdge: s['shortest_edge'] as number };
    }
    return bad(key, 'an integer, {"height", "width"} or {"shortest_edge"}');
  };
  const d = VIT_DEFAULTS;
  const size = o['size'] === undefined ? d.size : hw('size', o['size']);
  let cropSize: ImageProcessorConfig['cropSize'] = null;
  const doCenterCrop = bool('do_center_crop', false);
  if (doCenterCrop) {
    const c =
      o['crop_size'] === undefined
        ? bad('crop_size', 'given when do_center_crop is true')
        : hw('crop_size', o['crop_size']);
    if (!('height' in c)) return bad('crop_size', '{"height", "width"} or an integer');
    cropSize = c;
  }
  const resample = num('resample', d.resample);
  if (!Number.isInteger(resample) || resample < 0 || resample > 5) bad('resample', 'a Pillow filter id 0..5');
  return {
    doResize: bool('do_resize', d.doResize),
    size,
    resample,
    doCenterCrop,
    cropSize,
    doRescale: bool('do_rescale', d.doRescale),
    rescaleFactor: num('rescale_factor', d.rescaleFactor),
    doNormalize: bool('do_normalize', d.doNormalize),
    imageMean: triple('image_mean', d.imageMean),
    imageStd: triple('image_std', d.imageStd),
  };
}

/** The output height and width an image of the given size gets from `config` (after resize and crop). */
export function outputSize(
  width: number,
  height: number,
  config: ImageProcessorConfig,
): { height: number; width: number } {
  let h = height;
  let w = width;
  if (config.doResize) ({ height: h, width: w } = resizeTarget(width, height, config));
  if (config.doCenterCrop && config.cropSize) ({ height: h, width: w } = config.cropSize);
  return { height: h, width: w };
}

/** transformers' get_resize_output_image_size: a fixed size, or the shortest edge scaled with the aspect ratio kept. */
function resizeTarget(width: number, height: number, config: ImageProcessorConfig): { height: number; width: number } {
  const s = config.size;
  if ('height' in s) return s;
  const [short, long] = width <= height ? [width, height] : [height, width];
  const newShort = s.shortestEdge;
  const newLong = Math.trunc((newShort * long) / short);
  return width <= height ? { height: newLong, width: newShort } : { height: newShort, width: newLong };
}

/** transformers' center_crop on an 8-bit image (zero padding where the crop is larger than the image). */
function centerCrop(img: Image8, ch: number, cw: number): Image8 {
  const { width: W, height: H, channels: C } = img;
  const top = Math.floor((H - ch) / 2);
  const left = Math.floor((W - cw) / 2);
  const out = new Uint8Array(ch * cw * C);
  for (let y = 0; y < ch; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= H) continue;
    for (let x = 0; x < cw; x++) {
      const sx = x + left;
      if (sx < 0 || sx >= W) continue;
      for (let c = 0; c < C; c++) out[(y * cw + x) * C + c] = img.data[(sy * W + sx) * C + c]!;
    }
  }
  return { width: cw, height: ch, channels: C, data: out };
}

/** The 8-bit steps of preprocessing: resize with Pillow's filter, then the optional centre crop. */
export function imageGeometry(img: Image8, config: ImageProcessorConfig): Image8 {
  let cur = img;
  if (config.doResize) {
    const { height, width } = resizeTarget(img.width, img.height, config);
    cur = resizeImage(cur, width, height, config.resample);
  }
  if (config.doCenterCrop && config.cropSize) cur = centerCrop(cur, config.cropSize.height, config.cropSize.width);
  return cur;
}

/**
 * ViTImageProcessor.preprocess on one RGB image (the PIL path): resize with Pillow's filter on uint8,
 * optional centre crop, rescale (uint8 × factor in float64, stored as float32), normalize ((x − mean) / std
 * in float32), channels first. Returns 3·H·W floats.
 */
export function preprocessImage(img: Image8, config: ImageProcessorConfig = VIT_DEFAULTS): Float32Array {
  if (img.channels !== 3)
    throw new RangeError(`[image] preprocess: expected an RGB image (3 channels), got ${img.channels}`);
  const cur = imageGeometry(img, config);
  const { width: W, height: H } = cur;
  const plane = W * H;
  const out = new Float32Array(3 * plane);
  const f = Math.fround;
  const mean = config.imageMean.map(f);
  const std = config.imageStd.map(f);
  for (let c = 0; c < 3; c++) {
    const m = mean[c]!;
    const s = std[c]!;
    for (let i = 0; i < plane; i++) {
      let v = cur.data[i * 3 + c]!;
      if (config.doRescale) v = f(v * config.rescaleFactor);
      if (config.doNormalize) v = f(f(v - m) / s);
      out[c * plane + i] = v;
    }
  }
  return out;
}

/** One image → an f32 tensor [1, 3, H, W] (pixel_values). */
export function imageToTensor(img: Image8, config: ImageProcessorConfig = VIT_DEFAULTS, opts?: CreateOpts): Tensor {
  return imagesToTensor([img], config, opts);
}

/** A batch → an f32 tensor [B, 3, H, W]; every image must come out at the same size (a fixed size or a crop). */
export function imagesToTensor(
  imgs: readonly Image8[],
  config: ImageProcessorConfig = VIT_DEFAULTS,
  opts?: CreateOpts,
): Tensor {
  if (imgs.length === 0) throw new RangeError('[image] imagesToTensor: empty batch');
  const first = outputSize(imgs[0]!.width, imgs[0]!.height, config);
  const plane = first.height * first.width;
  const data = new Float32Array(imgs.length * 3 * plane);
  imgs.forEach((img, i) => {
    const sz = outputSize(img.width, img.height, config);
    if (sz.height !== first.height || sz.width !== first.width) {
      throw new RangeError(
        `[image] imagesToTensor: image ${i} comes out ${sz.height}×${sz.width}, image 0 ${first.height}×${first.width}; batch images need one size`,
      );
    }
    data.set(preprocessImage(img, config), i * 3 * plane);
  });
  return tensor(data, { ...opts, dtype: 'f32', shape: [imgs.length, 3, first.height, first.width] });
}

/** Reads image files and preprocesses them into one [B, 3, H, W] tensor. */
export function loadImagesTensor(
  paths: readonly string[],
  config: ImageProcessorConfig = VIT_DEFAULTS,
  opts?: CreateOpts,
): Tensor {
  return imagesToTensor(paths.map(readImage), config, opts);
}
