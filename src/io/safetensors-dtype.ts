// The dtypes of the safetensors format: element width, the order safetensors' writer sorts them in,
// and how each maps to an engine dtype. The list follows the `Dtype` enum of huggingface/safetensors
// (safetensors/src/tensor.rs), whose declaration order is the writer's sort key.

import type { DType } from '../backends/dtype.js';

/** A safetensors dtype name. The named ones load into the engine; others (F8_*, C64, …) are recognised only. */
export type SafetensorsDType =
  'BOOL' | 'U8' | 'I8' | 'I16' | 'U16' | 'I32' | 'U32' | 'I64' | 'U64' | 'F16' | 'BF16' | 'F32' | 'F64' | (string & {}); // any other name (`string & {}` keeps editors suggesting the names above)

/** Bits per element, in the enum's declaration order (the writer sorts by descending position). */
const DTYPES: readonly (readonly [name: string, bits: number])[] = [
  ['BOOL', 8],
  ['F4', 4],
  ['F6_E2M3', 6],
  ['F6_E3M2', 6],
  ['U8', 8],
  ['I8', 8],
  ['F8_E5M2', 8],
  ['F8_E4M3', 8],
  ['F8_E8M0', 8],
  ['F8_E4M3FNUZ', 8],
  ['F8_E5M2FNUZ', 8],
  ['I16', 16],
  ['U16', 16],
  ['F16', 16],
  ['BF16', 16],
  ['I32', 32],
  ['U32', 32],
  ['F32', 32],
  ['C64', 64],
  ['F64', 64],
  ['I64', 64],
  ['U64', 64],
];

const BITS = new Map(DTYPES.map(([name, bits]) => [name, bits]));
const ORDER = new Map(DTYPES.map(([name], i) => [name, i]));

/** Bits per element of a known safetensors dtype, or undefined for an unknown name. */
export function dtypeBits(dtype: string): number | undefined {
  return BITS.get(dtype);
}

/** Position in safetensors' Dtype enum: its writer lays tensors out by descending position, then name. */
export function dtypeOrder(dtype: string): number {
  const i = ORDER.get(dtype);
  if (i === undefined) throw new Error(`[safetensors] Unknown dtype ${dtype}`);
  return i;
}

export const FLOAT_DTYPES: ReadonlySet<string> = new Set(['F16', 'BF16', 'F32', 'F64']);
export const INT_DTYPES: ReadonlySet<string> = new Set(['U8', 'I8', 'I16', 'U16', 'I32', 'U32', 'I64', 'U64']);

/** The engine dtype a file dtype loads as by default, or null when the engine cannot hold it. */
export function defaultEngineDType(dtype: string): DType | null {
  if (FLOAT_DTYPES.has(dtype)) return 'f32';
  if (INT_DTYPES.has(dtype)) return 'i32';
  if (dtype === 'BOOL') return 'bool';
  return null;
}

/** Whether a tensor stored as `src` may be loaded as engine dtype `dst` (never float → integer). */
export function canLoadAs(src: string, dst: DType): boolean {
  const numeric = FLOAT_DTYPES.has(src) || INT_DTYPES.has(src) || src === 'BOOL';
  switch (dst) {
    case 'f32':
    case 'f64':
    case 'bf16':
    case 'f16':
      return numeric;
    case 'i32':
    case 'i64':
      return INT_DTYPES.has(src) || src === 'BOOL';
    case 'bool':
      return src === 'BOOL';
  }
}

const FILE_DTYPE: Readonly<Record<DType, SafetensorsDType>> = {
  f32: 'F32',
  f64: 'F64',
  f16: 'F16',
  bf16: 'BF16',
  i32: 'I32',
  i64: 'I64',
  bool: 'BOOL',
};

/** The safetensors dtype an engine dtype is written as. */
export function fileDType(dtype: DType): SafetensorsDType {
  return FILE_DTYPE[dtype];
}
