// Pillow's Image.resize for 8-bit RGB images, reproduced bit for bit: the convolution filters of
// libImaging/Resample.c (coefficients precomputed per output pixel, support widened by the scale
// factor when downscaling, fixed-point weights with 22 fractional bits, a horizontal pass then a
// vertical pass with rounding and clipping to uint8 in between), and NEAREST's affine scaling
// (libImaging/Geometry.c, ImagingScaleAffine).

/** Pillow's resampling filter ids (PIL.Image.Resampling), as preprocessor_config.json's "resample" holds them. */
export const Resample = {
  NEAREST: 0,
  LANCZOS: 1,
  BILINEAR: 2,
  BICUBIC: 3,
  BOX: 4,
  HAMMING: 5,
} as const;
export type ResampleId = (typeof Resample)[keyof typeof Resample];

/** An 8-bit image: `channels` interleaved bytes per pixel, rows top to bottom. */
export interface Image8 {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

interface Filter {
  fn: (x: number) => number;
  support: number;
}

const sinc = (x: number): number => {
  if (x === 0) return 1;
  x *= Math.PI;
  return Math.sin(x) / x;
};

const FILTERS: Record<number, Filter> = {
  [Resample.BOX]: { fn: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0), support: 0.5 },
  [Resample.BILINEAR]: {
    fn: (x) => {
      if (x < 0) x = -x;
      return x < 1 ? 1 - x : 0;
    },
    support: 1,
  },
  [Resample.HAMMING]: {
    fn: (x) => {
      if (x < 0) x = -x;
      if (x === 0) return 1;
      if (x >= 1) return 0;
      x *= Math.PI;
      return (Math.sin(x) / x) * (0.54 + 0.46 * Math.cos(x));
    },
    support: 1,
  },
  [Resample.BICUBIC]: {
    // Keys' cubic convolution with a = -0.5, as Pillow uses.
    fn: (x) => {
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
    support: 2,
  },
  [Resample.LANCZOS]: { fn: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0), support: 3 },
};

/** Fixed-point precision of the 8-bit passes: 32 bits - 8 for the value - 2 for overshoot of negative lobes. */
const PRECISION_BITS = 32 - 8 - 2;

interface Coeffs {
  ksize: number;
  /** Per output pixel: first input index and number of taps. */
  bounds: Int32Array;
  /** Per output pixel: ksize fixed-point weights. */
  kk: Int32Array;
}

/** precompute_coeffs + normalize_coeffs_8bpc for one axis, resizing [in0, in1) of inSize onto outSize pixels. */
function precomputeCoeffs(inSize: number, in0: number, in1: number, outSize: number, filter: Filter): Coeffs {
  const scale = (in1 - in0) / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    // C casts truncate toward zero.
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.fn((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < ksize; x++) {
      let v = x < xmax ? k[x]! : 0;
      if (x < xmax && ww !== 0) v /= ww;
      kk[xx * ksize + x] =
        v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

/** clip8: the fixed-point sum back to a byte (arithmetic shift, then clamp to 0..255). */
const clip8 = (ss: number): number => {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
};

/**
 * Resizes `img` to width × height exactly as Pillow's `Image.resize((width, height), resample)` does for
 * an "L" or "RGB" image (reducing_gap=None, the whole image as the box). resample: a Resample id.
 */
export function resizeImage(img: Image8, width: number, height: number, resample: number): Image8 {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`[image] resize: target size must be positive integers, got ${width}×${height}`);
  }
  if (width === img.width && height === img.height) return { ...img, data: img.data.slice() };
  if (resample === Resample.NEAREST) return resizeNearest(img, width, height);
  const filter = FILTERS[resample];
  if (filter === undefined) {
    throw new RangeError(
      `[image] resize: unknown resample filter ${resample} (Pillow ids: 0 NEAREST, 1 LANCZOS, 2 BILINEAR, 3 BICUBIC, 4 BOX, 5 HAMMING)`,
    );
  }
  const horiz = precomputeCoeffs(img.width, 0, img.width, width, filter);
  const vert = precomputeCoeffs(img.height, 0, img.height, height, filter);
  let cur = img;
  if (width !== img.width) {
    // Only the rows the vertical pass will read are resampled, as Pillow does; the result is the same.
    const first = vert.bounds[0]!;
    const last = vert.bounds[(height - 1) * 2]! + vert.bounds[(height - 1) * 2 + 1]!;
    const rows = height !== img.height ? [first, last] : [0, img.height];
    cur = horizontalPass(img, width, horiz, rows[0]!, rows[1]!);
    if (height !== img.height) {
      for (let i = 0; i < height; i++) vert.bounds[i * 2]! -= first;
    }
  }
  if (height !== img.height) cur = verticalPass(cur, height, vert);
  return cur;
}

function horizontalPass(img: Image8, outW: number, c: Coeffs, y0: number, y1: number): Image8 {
  const ch = img.channels;
  const out = new Uint8Array(outW * (y1 - y0) * ch);
  const half = 1 << (PRECISION_BITS - 1);
  const src = img.data;
  for (let y = y0; y < y1; y++) {
    const rowIn = y * img.width * ch;
    const rowOut = (y - y0) * outW * ch;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = c.bounds[xx * 2]!;
      const xmax = c.bounds[xx * 2 + 1]!;
      const kOff = xx * c.ksize;
      for (let b = 0; b < ch; b++) {
        let ss = half;
        for (let x = 0; x < xmax; x++) ss += src[rowIn + (x + xmin) * ch + b]! * c.kk[kOff + x]!;
        out[rowOut + xx * ch + b] = clip8(ss);
      }
    }
  }
  return { width: outW, height: y1 - y0, channels: ch, data: out };
}

function verticalPass(img: Image8, outH: number, c: Coeffs): Image8 {
  const ch = img.channels;
  const w = img.width;
  const out = new Uint8Array(w * outH * ch);
  const half = 1 << (PRECISION_BITS - 1);
  const src = img.data;
  const stride = w * ch;
  for (let yy = 0; yy < outH; yy++) {
    const ymin = c.bounds[yy * 2]!;
    const ymax = c.bounds[yy * 2 + 1]!;
    const kOff = yy * c.ksize;
    for (let i = 0; i < stride; i++) {
      let ss = half;
      for (let y = 0; y < ymax; y++) ss += src[(y + ymin) * stride + i]! * c.kk[kOff + y]!;
      out[yy * stride + i] = clip8(ss);
    }
  }
  return { width: w, height: outH, channels: ch, data: out };
}

/**
 * NEAREST: Pillow's affine scaling with a = (in/out, 0, 0, 0, in/out, 0). Source positions are
 * accumulated in double precision from the first pixel centre, and truncated, as Geometry.c does.
 */
function resizeNearest(img: Image8, width: number, height: number): Image8 {
  const ch = img.channels;
  const out = new Uint8Array(width * height * ch);
  const ax = img.width / width;
  const ay = img.height / height;
  const xin = new Int32Array(width);
  let xo = ax * 0.5;
  for (let x = 0; x < width; x++) {
    xin[x] = Math.min(img.width - 1, xo < 0 ? 0 : Math.trunc(xo));
    xo += ax;
  }
  let yo = ay * 0.5;
  for (let y = 0; y < height; y++) {
    const yi = Math.min(img.height - 1, yo < 0 ? 0 : Math.trunc(yo));
    for (let x = 0; x < width; x++) {
      const s = (yi * img.width + xin[x]!) * ch;
      const d = (y * width + x) * ch;
      for (let b = 0; b < ch; b++) out[d + b] = img.data[s + b]!;
    }
    yo += ay;
  }
  return { width, height, channels: ch, data: out };
}
