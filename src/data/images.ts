// Image classification from a folder tree, one subfolder per class (torchvision's ImageFolder layout):
// every PNG/JPEG is decoded and resized/cropped once at load and kept as 8-bit RGB; get() applies the
// processor's rescale and normalisation, giving exactly preprocessImage's pixel values.

import { readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { describeError } from '../io/errors.js';
import { type Image8, type ImageProcessorConfig, imageGeometry, preprocessImage, readImage } from '../io/image.js';
import { DataError, RowPolicy } from './errors.js';
import { type Dataset, type Example, checkIndex } from './example.js';

export interface ImageFolderOpts {
  /** The model's image processor (loadImageProcessorConfig); its output size must be fixed (a size or a crop). */
  processor: ImageProcessorConfig;
  /** A file that cannot be decoded: 'error' (default) throws naming it, 'skip' counts it in `skipped`. */
  onBadRow?: 'error' | 'skip';
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch (e) {
    throw new DataError(`[data] ${dir}: cannot list the image folder: ${describeError(e)}`, { file: dir, cause: e });
  }
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Loads `dir`/<class>/<image>: class names are the subfolders' names, sorted (class id = position);
 * images are the .png/.jpg/.jpeg files in them (sorted; hidden and other files ignored). Memory: 3·H·W
 * bytes per image at the processor's output size (150 KB at 224×224).
 */
export function loadImageFolder(dir: string, opts: ImageFolderOpts): Dataset {
  const config = opts.processor;
  const policy = new RowPolicy(dir, opts.onBadRow);
  const classes = listDir(dir).filter((name) => !name.startsWith('.') && isDir(join(dir, name)));
  if (classes.length === 0)
    throw new DataError(`[data] ${dir}: no class subfolders (expected ${dir}/<class name>/<image>.png|jpg)`, {
      file: dir,
    });
  const images: Image8[] = [];
  const labels: number[] = [];
  const sources: string[] = [];
  let shape: { height: number; width: number; from: string } | null = null;
  classes.forEach((cls, label) => {
    const sub = join(dir, cls);
    for (const name of listDir(sub)) {
      if (name.startsWith('.') || !IMAGE_EXTENSIONS.has(extname(name).toLowerCase())) continue;
      const file = join(sub, name);
      let img: Image8;
      try {
        img = imageGeometry(readImage(file), config);
      } catch (e) {
        policy.bad(undefined, describeError(e).replace(/^\[image\] /, ''), file, e);
        continue;
      }
      if (shape === null) shape = { height: img.height, width: img.width, from: file };
      else if (img.height !== shape.height || img.width !== shape.width)
        throw new DataError(
          `[data] ${file}: comes out ${img.height}×${img.width} after resizing, ${shape.from} ${shape.height}×${shape.width}; batches need one size, so the processor needs a fixed size or a centre crop`,
          { file },
        );
      images.push(img);
      labels.push(label);
      sources.push(file);
    }
  });
  if (images.length === 0)
    throw new DataError(
      `[data] ${dir}: no usable images in ${classes.map((c) => JSON.stringify(c)).join(', ')}${policy.skipped > 0 ? ` (${policy.skipped} unreadable skipped)` : ''}`,
      { file: dir },
    );
  // Resize and crop are done; get() only rescales and normalises.
  const pixelConfig: ImageProcessorConfig = { ...config, doResize: false, doCenterCrop: false };
  return {
    kind: 'image-classification',
    length: images.length,
    labelNames: classes,
    skipped: policy.skipped,
    get(i: number): Example {
      checkIndex(i, images.length, 'dataset.get');
      return { pixelValues: preprocessImage(images[i]!, pixelConfig), label: labels[i]!, source: sources[i]! };
    },
    exampleLength: () => 0,
  };
}
