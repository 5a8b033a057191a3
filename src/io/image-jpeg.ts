// JPEG decoding with libjpeg-turbo compiled to WebAssembly (the .wasm that @cwasm/jpeg-turbo ships),
// driven through TurboJPEG's API here rather than through that package's wrapper: its wrapper keeps one
// instance forever, and libjpeg's error exit (longjmp, which the module can only emulate by throwing)
// leaks that instance's memory and stack on every corrupt file until it stops working. We start a fresh
// instance after any failure. Defaults (ISLOW IDCT, fancy upsampling) are Pillow's, so pixels match it.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

// The project's lib settings carry no WebAssembly types; these are the few members used.
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface TurboExports {
  memory: { buffer: ArrayBuffer };
  malloc(n: number): number;
  free(p: number): void;
  tjInitDecompress(): number;
  tjDestroy(h: number): number;
  tjDecompressHeader3(
    h: number,
    src: number,
    n: number,
    w: number,
    hgt: number,
    subsamp: number,
    colorspace: number,
  ): number;
  tjDecompress2(
    h: number,
    src: number,
    n: number,
    dst: number,
    w: number,
    pitch: number,
    hgt: number,
    pixelFormat: number,
    flags: number,
  ): number;
}

const TJPF_RGB = 0;
const TJCS_CMYK = 3;
const TJCS_YCCK = 4;

/** Thrown for a file libjpeg-turbo rejects; the caller adds the file name. */
export class JpegTurboError extends Error {
  override name = 'JpegTurboError';
}

let compiled: object | null = null;
let live: TurboExports | null = null;

function instance(): TurboExports {
  if (live !== null) return live;
  if (compiled === null) {
    const path = createRequire(import.meta.url).resolve('@cwasm/jpeg-turbo/jpeg-turbo.wasm');
    compiled = new wasm.Module(readFileSync(path));
  }
  const fail = (what: string) => () => {
    throw new JpegTurboError(`libjpeg-turbo: ${what}`);
  };
  const imports = {
    // libjpeg reports errors by longjmp: here it unwinds as a JS exception and the instance is dropped.
    env: { setjmp: () => 0, longjmp: fail('corrupt or unsupported data') },
    wasi_snapshot_preview1: {
      environ_sizes_get: () => 0,
      environ_get: fail('environ_get'),
      proc_exit: fail('proc_exit'),
      fd_close: fail('fd_close'),
      fd_seek: fail('fd_seek'),
      fd_write: fail('fd_write'),
    },
  };
  live = new wasm.Instance(compiled, imports).exports as TurboExports;
  return live;
}

/**
 * Decodes JPEG bytes to 8-bit RGB (greyscale replicated). Returns null for CMYK/YCCK files, which
 * TurboJPEG cannot convert to RGB. Throws JpegTurboError for data it rejects.
 */
export function decodeJpegTurbo(bytes: Uint8Array): { width: number; height: number; data: Uint8Array } | null {
  const ex = instance();
  let ok = false;
  try {
    const src = ex.malloc(bytes.length);
    const meta = ex.malloc(16);
    if (src === 0 || meta === 0) throw new JpegTurboError('libjpeg-turbo: out of memory');
    new Uint8Array(ex.memory.buffer, src, bytes.length).set(bytes);
    const h = ex.tjInitDecompress();
    if (h === 0) throw new JpegTurboError('libjpeg-turbo: cannot create a decompressor');
    if (ex.tjDecompressHeader3(h, src, bytes.length, meta, meta + 4, meta + 8, meta + 12) !== 0) {
      throw new JpegTurboError('libjpeg-turbo: cannot read the JPEG header');
    }
    const [width, height, , colorspace] = new Int32Array(ex.memory.buffer, meta, 4);
    let result: { width: number; height: number; data: Uint8Array } | null = null;
    if (colorspace !== TJCS_CMYK && colorspace !== TJCS_YCCK) {
      const n = width! * height! * 3;
      const dst = ex.malloc(n);
      if (dst === 0) throw new JpegTurboError(`libjpeg-turbo: out of memory for ${width}×${height}`);
      if (ex.tjDecompress2(h, src, bytes.length, dst, width!, width! * 3, height!, TJPF_RGB, 0) !== 0) {
        throw new JpegTurboError('libjpeg-turbo: decoding failed');
      }
      result = { width: width!, height: height!, data: new Uint8Array(ex.memory.buffer, dst, n).slice() };
      ex.free(dst);
    }
    ex.tjDestroy(h);
    ex.free(meta);
    ex.free(src);
    ok = true;
    return result;
  } finally {
    // After any failure the instance's heap and stack may be inconsistent: start a new one next time.
    if (!ok) live = null;
  }
}
