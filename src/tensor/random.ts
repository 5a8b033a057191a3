// Seeded host-side random generation. Generator is torch's CPU generator (MT19937 seeded with
// init_genrand(seed mod 2³²)), and uniform() reproduces torch's float32 `uniform_` bit for bit
// (FMA recipe by default), which VeRA's shared projections depend on (../shared peft-vera.md §5).

/** A generator's state as plain JSON (see Generator.state()). */
export interface GeneratorState {
  mt: number[];
  index: number;
  seed: string;
}

export class Generator {
  #state = new Uint32Array(624);
  #index = 624;
  #seed: bigint;

  constructor(seed: number | bigint = 0) {
    this.#seed = 0n;
    this.manualSeed(seed);
  }

  get seed(): bigint {
    return this.#seed;
  }

  /** Re-seeds like torch.Generator.manual_seed: only the low 32 bits matter. */
  manualSeed(seed: number | bigint): this {
    if (typeof seed === 'number' && !Number.isSafeInteger(seed))
      throw new Error(`[Generator] Seed ${seed} is not an integer`);
    this.#seed = BigInt(seed);
    let x = Number(BigInt.asUintN(32, this.#seed));
    this.#state[0] = x;
    for (let j = 1; j < 624; j++) {
      x = (Math.imul(1812433253, x ^ (x >>> 30)) + j) >>> 0;
      this.#state[j] = x;
    }
    this.#index = 624;
    return this;
  }

  /**
   * A copy of the generator's whole state (torch's get_state): the 624 MT19937 words, the read
   * position and the seed. Plain JSON, so a training checkpoint can store it and resume exactly.
   */
  state(): GeneratorState {
    return { mt: Array.from(this.#state), index: this.#index, seed: this.#seed.toString() };
  }

  /** Restores a state from state() (torch's set_state): the next draws continue where it left off. */
  setState(s: GeneratorState): this {
    const ok =
      s !== null &&
      typeof s === 'object' &&
      Array.isArray(s.mt) &&
      s.mt.length === 624 &&
      s.mt.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff) &&
      Number.isInteger(s.index) &&
      s.index >= 0 &&
      s.index <= 624 &&
      typeof s.seed === 'string' &&
      /^-?\d+$/.test(s.seed);
    if (!ok)
      throw new Error('[Generator] setState: expected { mt: 624 uint32 words, index: 0..624, seed: integer string }');
    this.#state.set(s.mt);
    this.#index = s.index;
    this.#seed = BigInt(s.seed);
    return this;
  }

  /** The next raw 32-bit output of MT19937. */
  nextU32(): number {
    const s = this.#state;
    if (this.#index >= 624) {
      for (let k = 0; k < 624; k++) {
        const y = (s[k]! & 0x80000000) | (s[(k + 1) % 624]! & 0x7fffffff);
        s[k] = s[(k + 397) % 624]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.#index = 0;
    }
    let y = s[this.#index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /**
   * n float32 draws from U(from, to) exactly as torch's CPU `tensor.uniform_(from, to, generator)`:
   * one 32-bit draw per element, 24 random bits, `x·(to − from) + from` in float32, fused (FMA, as
   * torch's AVX2/AVX-512 kernels compute it) unless fma = false (torch's DEFAULT kernel).
   */
  uniform(n: number, from: number, to: number, fma = true): Float32Array {
    const out = new Float32Array(n);
    const f = Math.fround(from);
    const range = Math.fround(Math.fround(to) - f);
    for (let i = 0; i < n; i++) {
      const k = this.nextU32() & 0xffffff;
      // k·2⁻²⁴ and the product with a 24-bit float are exact in double, so one fround == one fma rounding.
      out[i] = fma ? (k / 16777216) * range + f : Math.fround((k / 16777216) * range) + f;
    }
    return out;
  }

  /** n draws from N(mean, std²) by the Box–Muller transform (torch's layout, not bit-exact with it). */
  normal(n: number, mean = 0, std = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const u1 = 1 - (this.nextU32() & 0xffffff) / 16777216;
      const u2 = (this.nextU32() & 0xffffff) / 16777216;
      const r = Math.sqrt(-2 * Math.log(u1));
      out[i] = r * Math.cos(2 * Math.PI * u2) * std + mean;
      if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * u2) * std + mean;
    }
    return out;
  }
}

/** The generator used when none is given (torch.manual_seed's counterpart). */
export const defaultGenerator = new Generator(0);

/** Position in the counter-based Philox stream that dropout masks are drawn from. */
export class PhiloxStream {
  constructor(
    public seed = 0,
    public offset = 0,
  ) {}

  /** Reserves n consecutive counters (rounded up to a block of 4) and returns where they start. */
  take(n: number): { seed: number; offset: number } {
    const at = { seed: this.seed, offset: this.offset };
    this.offset += Math.ceil(n / 4) * 4;
    return at;
  }

  state(): { seed: number; offset: number } {
    return { seed: this.seed, offset: this.offset };
  }

  restore(s: { seed: number; offset: number }): void {
    this.seed = s.seed;
    this.offset = s.offset;
  }
}

export const dropoutStream = new PhiloxStream();

/** Seeds the default generator and the dropout stream (torch.manual_seed's counterpart). */
export function manualSeed(seed: number | bigint): void {
  defaultGenerator.manualSeed(seed);
  dropoutStream.restore({ seed: Number(BigInt.asUintN(32, BigInt(seed))), offset: 0 });
}

/** Everything random a training step consumes: the default generator and the dropout stream position. */
export interface RngState {
  generator: GeneratorState;
  dropout: { seed: number; offset: number };
}

/** The global random state (torch.get_rng_state's counterpart), as plain JSON. */
export function rngState(): RngState {
  return { generator: defaultGenerator.state(), dropout: dropoutStream.state() };
}

/** Restores rngState()'s result, so the next draws and dropout masks repeat an earlier run's exactly. */
export function setRngState(s: RngState): void {
  const d = s?.dropout;
  if (!d || !Number.isSafeInteger(d.seed) || !Number.isSafeInteger(d.offset) || d.offset < 0)
    throw new Error('[random] setRngState: dropout must be { seed: integer, offset: integer >= 0 }');
  defaultGenerator.setState(s.generator);
  dropoutStream.restore({ seed: d.seed, offset: d.offset });
}
