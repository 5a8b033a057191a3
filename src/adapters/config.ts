// Fields every PEFT config shares (PeftConfig plus the targeting fields VeRA and LoRA both have), read
// from and written to adapter_config.json with PEFT's names. The written peft_version names the PEFT
// release whose file format vera-ts mirrors.

import { AdapterError } from './errors.js';
import type { PyJson } from './python-json.js';

export const PEFT_FORMAT_VERSION = '0.21.0';

export type BiasMode = 'none' | 'all' | 'vera_only' | 'lora_only';

export interface CommonConfig {
  task_type: string | null;
  base_model_name_or_path: string | null;
  revision: string | null;
  inference_mode: boolean;
  auto_mapping: { base_model_class: string; parent_library: string } | null;
  target_modules: string[] | string | null;
  layers_to_transform: number[] | number | null;
  layers_pattern: string[] | string | null;
  /** Modules trained in full and saved with the adapter (e.g. a classification head). */
  modules_to_save: string[] | null;
  /** The target layers store W as [in, out] (GPT-2's Conv1D); PEFT forces it to match the layers. */
  fan_in_fan_out: boolean;
  bias: BiasMode;
}

function fail(file: string | undefined, msg: string): never {
  throw new AdapterError(`[adapter config]${file ? ` ${file}:` : ''} ${msg}`);
}

export function optionalNumber(j: Record<string, unknown>, key: string, fallback: number, file?: string): number {
  const v = j[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) fail(file, `"${key}" must be a number, got ${JSON.stringify(v)}`);
  return v;
}

export function optionalString(j: Record<string, unknown>, key: string, file?: string): string | null {
  const v = j[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') fail(file, `"${key}" must be a string, got ${JSON.stringify(v)}`);
  return v;
}

function stringList(j: Record<string, unknown>, key: string, file?: string): string[] | null {
  const v = j[key];
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string'))
    fail(file, `"${key}" must be a list of strings, got ${JSON.stringify(v)}`);
  return v as string[];
}

export function commonFromJson(j: Record<string, unknown>, file?: string): CommonConfig {
  const target = j['target_modules'];
  if (target !== undefined && target !== null && typeof target !== 'string' && !Array.isArray(target)) {
    fail(file, `"target_modules" must be a list of names or a regex string, got ${JSON.stringify(target)}`);
  }
  const layers = j['layers_to_transform'];
  if (
    layers !== undefined &&
    layers !== null &&
    !Number.isInteger(layers) &&
    !(Array.isArray(layers) && layers.every(Number.isInteger))
  ) {
    fail(file, `"layers_to_transform" must be an integer or a list of integers, got ${JSON.stringify(layers)}`);
  }
  const pattern = j['layers_pattern'];
  const bias = (j['bias'] ?? 'none') as BiasMode;
  if (!['none', 'all', 'vera_only', 'lora_only'].includes(bias))
    fail(file, `"bias" must be one of none, all, vera_only, lora_only; got ${JSON.stringify(bias)}`);
  return {
    task_type: optionalString(j, 'task_type', file),
    base_model_name_or_path: optionalString(j, 'base_model_name_or_path', file),
    revision: optionalString(j, 'revision', file),
    inference_mode: j['inference_mode'] === undefined ? false : Boolean(j['inference_mode']),
    auto_mapping: (j['auto_mapping'] as CommonConfig['auto_mapping']) ?? null,
    target_modules: typeof target === 'string' ? target : stringList(j, 'target_modules', file),
    layers_to_transform: (layers as number[] | number | undefined) ?? null,
    layers_pattern: typeof pattern === 'string' ? pattern : stringList(j, 'layers_pattern', file),
    modules_to_save: stringList(j, 'modules_to_save', file),
    fan_in_fan_out: Boolean(j['fan_in_fan_out'] ?? false),
    bias,
  };
}

export function commonToJson(c: CommonConfig): Record<string, PyJson> {
  return {
    auto_mapping: c.auto_mapping,
    base_model_name_or_path: c.base_model_name_or_path,
    bias: c.bias,
    fan_in_fan_out: c.fan_in_fan_out,
    inference_mode: c.inference_mode,
    layers_pattern: c.layers_pattern,
    layers_to_transform: c.layers_to_transform,
    modules_to_save: c.modules_to_save,
    peft_version: PEFT_FORMAT_VERSION,
    revision: c.revision,
    target_modules: c.target_modules,
    task_type: c.task_type,
  };
}
