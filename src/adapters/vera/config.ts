// VeraConfig: a typed mirror of PEFT's VeraConfig (peft/tuners/vera/config.py) with its field names and
// defaults, so adapter_config.json round-trips with Python. Unknown keys in a file are tolerated.

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
  validateVera(c);
  return c;
}

export function veraToJson(c: VeraConfig): Record<string, PyJson> {
  return {
    ...commonToJson(c),
    d_initial: new PyFloat(c.d_initial),
    init_weights: c.init_weights,
    peft_type: 'VERA',
    projection_prng_key: c.projection_prng_key,
    r: c.r,
    save_projection: c.save_projection,
    vera_dropout: new PyFloat(c.vera_dropout),
  };
}
