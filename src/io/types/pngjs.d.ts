// Minimal types for pngjs 7 (CommonJS, no bundled declarations): only the synchronous reader used by
// src/io/image.ts.

declare module 'pngjs' {
  export interface PngMetadata {
    width: number;
    height: number;
    /** Bits per sample: 1, 2, 4, 8 or 16. */
    depth: number;
    /** PNG colour type: 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA. */
    colorType: number;
    interlace: boolean;
    /** RGBA samples, 4 per pixel: bytes, or 16-bit values when depth is 16 and skipRescale is set. */
    data: Uint8Array | Uint16Array;
  }
  export interface PngReadOptions {
    /** Keep samples of depth other than 8 unscaled (16-bit stays 16-bit, 1/2/4-bit stay small integers). */
    skipRescale?: boolean;
    checkCRC?: boolean;
  }
  export const PNG: {
    sync: { read(buffer: Buffer, options?: PngReadOptions): PngMetadata };
  };
  const pngjs: { PNG: typeof PNG };
  export default pngjs;
}
