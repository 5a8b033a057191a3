// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
// counter-based generator behind dropout. Every backend computes u(seed, i) from the element index
// alone, so js, native and CUDA draw identical masks and the backward regenerates the mask instead
// of storing it. native/src/philox.h is the C++ twin of this file.

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

// High 32 bits of the 64-bit product of two uint32 (every partial product is exact in a double).
function mulhi(a: number, b: number): number {
  const aH = a >>> 16;
  const aL = a & 0xffff;
  const bH = b >>> 16;
  const bL = b & 0xffff;
  const ll = aL * bL;
  const lh = aL * bH;
  const hl = aH * bL;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (aH * bH + Math.floor(lh / 65536) + Math.floor(hl / 65536) + Math.floor(mid / 65536)) >>> 0;
}

/** The four 32-bit words of Philox4x32-10 for counter (c0, c1, 0, 0) and key (k0, k1). */
export function philox4x32(c0: number, c1: number, k0: number, k1: number, out: Uint32Array): void {
  let x0 = c0 >>> 0;
  let x1 = c1 >>> 0;
  let x2 = 0;
  let x3 = 0;
  let key0 = k0 >>> 0;
  let key1 = k1 >>> 0;
  for (let r = 0; r < 10; r++) {
    const hi0 = mulhi(M0, x0);
    const lo0 = Math.imul(M0, x0) >>> 0;
    const hi1 = mulhi(M1, x2);
    const lo1 = Math.imul(M1, x2) >>> 0;
    const n0 = (hi1 ^ x1 ^ key0) >>> 0;
    const n2 = (hi0 ^ x3 ^ key1) >>> 0;
    x0 = n0;
    x1 = lo1;
    x2 = n2;
    x3 = lo0;
    key0 = (key0 + W0) >>> 0;
    key1 = (key1 + W1) >>> 0;
  }
  out[0] = x0;
  out[1] = x1;
  out[2] = x2;
  out[3] = x3;
}

const TWO32 = 4294967296;

/**
 * Fills `out` with uniforms in [0, 1) for absolute indices offset … offset + out.length − 1: index j
 * uses word j mod 4 of the block with counter ⌊j/4⌋, keyed by the seed; u = (word >>> 8) · 2⁻²⁴.
 */
export function philoxUniform(seed: number, offset: number, out: Float32Array | Float64Array): void {
  const words = new Uint32Array(4);
  const k0 = seed >>> 0;
  const k1 = Math.floor(seed / TWO32) >>> 0;
  let block = -1;
  for (let i = 0; i < out.length; i++) {
    const j = offset + i;
    const b = Math.floor(j / 4);
    if (b !== block) {
      block = b;
      philox4x32(b >>> 0, Math.floor(b / TWO32) >>> 0, k0, k1, words);
    }
    out[i] = (words[j & 3]! >>> 8) * 2 ** -24;
  }
}
