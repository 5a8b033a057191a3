// Mixed-adapter batches (PeftModel.withAdapterNames, what `vera serve` runs): the forward of one batch
// whose rows use 8 different adapters, against the same batch on one adapter. No other library is the
// peer here: PEFT's adapter_names serves LoRA by sub-batches and is not installed on this machine, so the
// comparison is within vera-ts — the cost of mixing, for VeRA (shared A, B: one pass) and LoRA (one
// pass per adapter, masked).

import { join } from 'node:path';
import { getPeftModel, loraConfig, veraConfig } from '../src/adapters/index.js';
import { noGrad } from '../src/autograd/graph.js';
import { defaultBackend } from '../src/backends/registry.js';
import { loadModel } from '../src/models/auto.js';
import { tensor } from '../src/tensor/creation.js';
import { scope } from '../src/tensor/scope.js';
import { type BenchRow, ROOT, emit, note, timeIt } from './lib.js';

const [B, T, ADAPTERS, THREADS] = [16, 64, 8, 2];
const TARGETS = ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj'];

export async function run(): Promise<BenchRow[]> {
  const backend = defaultBackend();
  const prev = backend.getThreads?.() ?? 1;
  backend.setThreads?.(THREADS);
  const rows: BenchRow[] = [];
  try {
    for (const [label, config] of [
      ['VeRA r=256', () => veraConfig({ r: 256, target_modules: TARGETS, fan_in_fan_out: true })],
      ['LoRA r=16', () => loraConfig({ r: 16, lora_alpha: 32, target_modules: TARGETS, fan_in_fan_out: true })],
    ] as const) {
      note(`mixed: ${label}`);
      const peft = getPeftModel(loadModel(join(ROOT, 'assets/base-model')), config(), { adapterName: 'a0' });
      for (let i = 1; i < ADAPTERS; i++) peft.addAdapter(`a${i}`, config());
      peft.model.eval();
      const ids = tensor(
        Int32Array.from({ length: B * T }, (_, i) => (i * 7919) % 4096),
        {
          dtype: 'i32',
          shape: [B, T],
        },
      );
      const forward = () => noGrad(() => scope(() => void peft.model.forward({ inputIds: ids }).toArray()));
      peft.setAdapter('a0');
      const one = await timeIt(forward, { warmup: 2, runs: 9 });
      const names = Array.from({ length: B }, (_, i) => `a${i % ADAPTERS}`);
      const mixed = await timeIt(() => peft.withAdapterNames(names, forward), { warmup: 2, runs: 9 });
      rows.push(
        emit({
          bench: 'mixed',
          case: `${label} on every block's linear layers, batch ${B}×${T}, ${THREADS} threads: ${ADAPTERS} adapters mixed in the batch`,
          ours: mixed.median_ms,
          peer: one.median_ms,
          peer_name: 'vera-ts, the same batch on one adapter',
          unit: 'ms',
        }),
      );
    }
  } finally {
    backend.setThreads?.(prev);
  }
  return rows;
}
