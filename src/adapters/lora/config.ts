// LoraConfig: a typed mirror of PEFT's LoraConfig for the features vera-ts implements (rank, alpha,
// rsLoRA scaling, dropout, Kaiming or Gaussian init, rank/alpha patterns, exclusions).
// Files that ask for anything else (DoRA, LoftQ, layer replication, …) are rejected with the field
// named, instead of being silently mis-applied. Written files carry PEFT 0.21's full field set.

import { type CommonConfig, commonFromJson, commonToJson, optionalNumber } from '../config.js';
import { AdapterError } from '../errors.js';
import { PyFloat, type PyJson } from '../python-json.js';

export interface LoraConfig extends CommonConfig {
  peft_type: 'LORA';
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** Scale by alpha/√r instead of alpha/r (Kalajdzievski 2023). */
  use_rslora: boolean;
  /** true: Kaiming-uniform A, zero B; 'gaussian': A ~ N(0, 1/r), zero B; false: random B too (tests). */
  init_lora_weights: boolean | 'gaussian';
  /** Module-name regex → rank / alpha overrides. */
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  exclude_modules: string[] | string | null;
}

export function loraConfig(fields: Partial<Omit<LoraConfig, 'peft_type'>> = {}): LoraConfig {
  const c: LoraConfig = {
    ...commonFromJson({}),
    peft_type: 'LORA',
    r: 8,
    lora_alpha: 8,
    lora_dropout: 0,
    use_rslora: false,
    init_lora_weights: true,
    rank_pattern: {},
    alpha_pattern: {},
    exclude_modules: null,
    ...fields,
  };
  validateLora(c);
  return c;
}

function validateLora(c: LoraConfig): void {
  if (!Number.isInteger(c.r) || c.r <= 0)
    throw new AdapterError(`[lora] \`r\` should be a positive integer value but the value passed is ${c.r}`);
  if (!(c.lora_dropout >= 0 && c.lora_dropout < 1))
    throw new AdapterError(`[lora] lora_dropout must be in [0, 1), got ${c.lora_dropout}`);
  if (![true, false, 'gaussian'].includes(c.init_lora_weights)) {
    throw new AdapterError(
      `[lora] init_lora_weights "${String(c.init_lora_weights)}" is not supported (supported: true, false, "gaussian")`,
    );
  }
  if (c.layers_pattern !== null && c.layers_to_transform === null) {
    throw new AdapterError('[lora] When `layers_pattern` is specified, `layers_to_transform` must also be specified.');
  }
}

/** Fields PEFT knows that change the method; vera-ts accepts only their inactive values. */
const UNSUPPORTED: Record<string, (v: unknown) => boolean> = {
  use_dora: (v) => v === false || v == null,
  layer_replication: (v) => v == null,
  target_parameters: (v) => v == null,
  trainable_token_indices: (v) => v == null,
  use_qalora: (v) => v === false || v == null,
  loftq_config: (v) => v == null || (typeof v === 'object' && Object.keys(v as object).length === 0),
  eva_config: (v) => v == null,
  corda_config: (v) => v == null,
  alora_invocation_tokens: (v) => v == null,
  arrow_config: (v) => v == null,
  lora_bias: (v) => v === false || v == null,
};

export function loraFromJson(j: Record<string, unknown>, file: string): LoraConfig {
  for (const [key, inactive] of Object.entries(UNSUPPORTED)) {
    if (!inactive(j[key]))
      throw new AdapterError(`[lora] ${file}: "${key}": ${JSON.stringify(j[key])} is not supported by vera-ts`);
  }
  const init = j['init_lora_weights'] ?? true;
  const exclude = j['exclude_modules'] ?? null;
  const c: LoraConfig = {
    ...commonFromJson(j, file),
    peft_type: 'LORA',
    r: optionalNumber(j, 'r', 8, file),
    lora_alpha: optionalNumber(j, 'lora_alpha', 8, file),
    lora_dropout: optionalNumber(j, 'lora_dropout', 0, file),
    use_rslora: Boolean(j['use_rslora'] ?? false),
    init_lora_weights: init as LoraConfig['init_lora_weights'],
    rank_pattern: (j['rank_pattern'] as Record<string, number> | undefined) ?? {},
    alpha_pattern: (j['alpha_pattern'] as Record<string, number> | undefined) ?? {},
    exclude_modules: exclude as LoraConfig['exclude_modules'],
  };
  validateLora(c);
  return c;
}

export function loraToJson(c: LoraConfig): Record<string, PyJson> {
  return {
    ...commonToJson(c),
    alora_invocation_tokens: null,
    alpha_pattern: c.alpha_pattern,
    arrow_config: null,
    corda_config: null,
    ensure_weight_tying: false,
    eva_config: null,
    exclude_modules: c.exclude_modules,
    init_lora_weights: c.init_lora_weights,
    kasa_config: null,
    layer_replication: null,
    loftq_config: {},
    lora_alpha: c.lora_alpha,
    lora_bias: false,
    lora_dropout: new PyFloat(c.lora_dropout),
    lora_ga_config: null,
    megatron_config: null,
    megatron_core: 'megatron.core',
    monteclora_config: null,
    peft_type: 'LORA',
    qalora_group_size: 16,
    r: c.r,
    rank_pattern: c.rank_pattern,
    target_parameters: null,
    trainable_token_indices: null,
    use_bdlora: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: c.use_rslora,
    velora_config: null,
  };
}
