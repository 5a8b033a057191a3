// VeraConfig: a typed mirror of PEFT's VeraConfig (peft/tuners/vera/config.py) with its field names and
// defaults, so adapter_config.json round-trips with Python. Unknown keys in a file are tolerated. One
// field is vera-ts's own: `experimental`, the ablations of the VeRA paper's Table 6 (see VeraExperimental).

import { AdapterError } from '../errors.js';
import { PyFloat, type PyJson } from '../python-json.js';
import { type CommonConfig, commonFromJson, commonToJson, optionalNumber } from '../config.js';

export interface VeraConfig extends CommonConfig {
  peft_type: 'VERA';
  /** Rank of the shared projections (PEFT default 256). */
  r: number;
  /** Seed of torch's CPU generator that draws vera_A then vera_B. */
  projection_prng_key: number;
  /** Store vera_A/vera_B in the adapter file (PEFT default true). */
  save_projection: boolean;
  vera_dropout: number;
  /** Initial value of every λ_d (PEFT default 0.1). */
  d_initial: number;
  /** True: λ_b = 0 and λ_d = d_initial (an identity adapter). */
  init_weights: boolean;
  /** Experimental ablations, not in PEFT's format; absent (or all defaults) is PEFT's VeRA. */
  experimental?: VeraExperimental;
}

/** The projections' initialisations the VeRA paper compares (Table 6); PEFT draws Kaiming-uniform. */
export const PROJECTION_INITS = ['kaiming_uniform', 'kaiming_normal', 'uniform_0_0.1'] as const;
export type ProjectionInit = (typeof PROJECTION_INITS)[number];

/**
 * The ablations of the VeRA paper's Table 6 ("only d", "only b", the projections' initialisation). Every
 * field defaults to PEFT's behaviour. Set, they are saved under EXPERIMENTAL_KEY, which PEFT ignores: an
 * adapter with a fixed λ still loads in PEFT with the same outputs (the fixed vector is saved like a
 * trained one, and PEFT merely trains it again if asked to), while non-default projections must be
 * saved in the file (save_projection), since PEFT regenerates only Kaiming-uniform ones from the seed.
 */
export interface VeraExperimental {
  /** Train λ_b (default true); false: λ_b is fixed at `fixed_value` (the paper's "only d"). */
  train_b?: boolean;
  /** Train λ_d (default true); false: λ_d is fixed at `fixed_value` (the paper's "only b"). */
  train_d?: boolean;
  /** The value of every element of a λ that is not trained (default 1, the paper's removed vector). */
  fixed_value?: number;
  /** How vera_A and vera_B are drawn (default kaiming_uniform, PEFT's). */
  projection_init?: ProjectionInit;
}

/** The adapter_config.json key of VeraConfig.experimental (vera-ts only; PEFT ignores unknown keys). */
export const EXPERIMENTAL_KEY = 'vera_ts_experimental';

/** An experimental block with every default filled in. */
export function experimentalOf(c: Pick<VeraConfig, 'experimental'>): Required<VeraExperimental> {
  const e = c.experimental ?? {};
  return {
    train_b: e.train_b ?? true,
    train_d: e.train_d ?? true,
    fixed_value: e.fixed_value ?? 1,
    projection_init: e.projection_init ?? 'kaiming_uniform',
  };
}

/** Whether a config asks for anything PEFT's VeRA does not do. */
export function isExperimental(c: Pick<VeraConfig, 'experimental'>): boolean {
  const e = experimentalOf(c);
  return !e.train_b || !e.train_d || e.fixed_value !== 1 || e.projection_init !== 'kaiming_uniform';
}

/** A VeraConfig with PEFT's defaults for every field not given. */
export function veraConfig(fields: Partial<Omit<VeraConfig, 'peft_type'>> = {}): VeraConfig {
  const c: VeraConfig = {
    ...commonFromJson({}),
    peft_type: 'VERA',
    r: 256,
    projection_prng_key: 0,
    save_projection: true,
    vera_dropout: 0,
    d_initial: 0.1,
    init_weights: true,
    ...fields,
  };
  validateVera(c);
  return c;
}

export function validateVera(c: VeraConfig): void {
  if (!Number.isInteger(c.r) || c.r <= 0)
    throw new AdapterError(`[vera] \`r\` should be a positive integer value but the value passed is ${c.r}`);
  if (!Number.isInteger(c.projection_prng_key))
    throw new AdapterError(`[vera] projection_prng_key must be an integer, got ${c.projection_prng_key}`);
  if (!(c.vera_dropout >= 0 && c.vera_dropout < 1))
    throw new AdapterError(`[vera] vera_dropout must be in [0, 1), got ${c.vera_dropout}`);
  if (!['none', 'all', 'vera_only'].includes(c.bias))
    throw new AdapterError(`[vera] bias must be "none", "all" or "vera_only", got "${c.bias}"`);
  if (c.layers_pattern !== null && c.layers_to_transform === null) {
    throw new AdapterError('[vera] When `layers_pattern` is specified, `layers_to_transform` must also be specified.');
  }
  validateExperimental(c);
}

function validateExperimental(c: VeraConfig): void {
  const e = c.experimental;
  if (e === undefined) return;
  if (e === null || typeof e !== 'object' || Array.isArray(e))
    throw new AdapterError(`[vera] experimental must be an object, got ${JSON.stringify(e)}`);
  const known = new Set(['train_b', 'train_d', 'fixed_value', 'projection_init']);
  for (const k of Object.keys(e))
    if (!known.has(k)) throw new AdapterError(`[vera] experimental.${k} is not an option (${[...known].join(', ')})`);
  for (const k of ['train_b', 'train_d'] as const)
    if (e[k] !== undefined && typeof e[k] !== 'boolean')
      throw new AdapterError(`[vera] experimental.${k} must be true or false, got ${JSON.stringify(e[k])}`);
  if (e.fixed_value !== undefined && !(typeof e.fixed_value === 'number' && Number.isFinite(e.fixed_value)))
    throw new AdapterError(
      `[vera] experimental.fixed_value must be a finite number, got ${JSON.stringify(e.fixed_value)}`,
    );
  const init = e.projection_init;
  if (init !== undefined && !PROJECTION_INITS.includes(init))
    throw new AdapterError(
      `[vera] experimental.projection_init must be one of ${PROJECTION_INITS.join(', ')}, got ${JSON.stringify(init)}`,
    );
  if (init !== undefined && init !== 'kaiming_uniform' && !c.save_projection)
    throw new AdapterError(
      `[vera] experimental.projection_init ${init} needs save_projection=true: PEFT regenerates only Kaiming-uniform projections from projection_prng_key`,
    );
}

/** Reads the VeRA fields of a parsed adapter_config.json (file names the source for errors). */
export function veraFromJson(j: Record<string, unknown>, file: string): VeraConfig {
  const num = (k: string, d: number) => optionalNumber(j, k, d, file);
  const c: VeraConfig = {
    ...commonFromJson(j, file),
    peft_type: 'VERA',
    r: num('r', 256),
    projection_prng_key: num('projection_prng_key', 0),
    save_projection: j['save_projection'] === undefined ? true : Boolean(j['save_projection']),
    vera_dropout: num('vera_dropout', 0),
    d_initial: num('d_initial', 0.1),
    init_weights: j['init_weights'] === undefined ? true : Boolean(j['init_weights']),
  };
  const experimental = j[EXPERIMENTAL_KEY];
  if (experimental !== undefined && experimental !== null) {
    if (typeof experimental !== 'object' || Array.isArray(experimental))
      throw new AdapterError(`[vera] ${file}: "${EXPERIMENTAL_KEY}" must be an object`);
    c.experimental = { ...(experimental as VeraExperimental) };
  }
  validateVera(c);
  return c;
}

export function veraToJson(c: VeraConfig): Record<string, PyJson> {
  const json: Record<string, PyJson> = {
    ...commonToJson(c),
    d_initial: new PyFloat(c.d_initial),
    init_weights: c.init_weights,
    peft_type: 'VERA',
    projection_prng_key: c.projection_prng_key,
    r: c.r,
    save_projection: c.save_projection,
    vera_dropout: new PyFloat(c.vera_dropout),
  };
  // Written only when it changes something, so that a default adapter's file stays PEFT's byte for byte.
  if (isExperimental(c)) {
    const e = experimentalOf(c);
    json[EXPERIMENTAL_KEY] = {
      fixed_value: new PyFloat(e.fixed_value),
      projection_init: e.projection_init,
      train_b: e.train_b,
      train_d: e.train_d,
    };
  }
  return json;
}
