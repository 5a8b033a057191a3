// The PEFT 0.21 parity fixtures (test/parity/gen_adapters.py) run in bf16 mixed precision: the base loaded
// with dtype 'bf16' (frozen weights bf16, their GEMMs in bf16 with f32 accumulation; adapter tensors f32).
// PEFT's float32 logits are the reference: adapted and disabled logits stay within BF16_TOL of them,
// relative to the largest reference logit — while the adapter's own effect (adapted − disabled) is far
// larger than that, so an adapter that bf16 drops or garbles fails. Native and js agree on the bf16
// arithmetic itself to bf16 resolution.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { PeftModel } from '../../src/adapters/index.js';
import { noGrad } from '../../src/autograd/graph.js';
import type { Backend } from '../../src/backends/backend.js';
import { getBackend, nativeAvailable } from '../../src/backends/registry.js';
import { loadModel } from '../../src/models/auto.js';
import type { ModelInputs } from '../../src/models/pretrained.js';
import { scope } from '../../src/tensor/scope.js';
import { caseDir, refInputs, refsOf } from '../models/fixtures.js';

const ADAPTERS = fileURLToPath(new URL('../../../test/parity/fixtures/adapters/', import.meta.url));
const manifest = JSON.parse(readFileSync(join(ADAPTERS, 'manifest.json'), 'utf8')) as {
  cases: { name: string; base: string; peft_type: string }[];
};
/**
 * bf16 against PEFT's f32 logits, relative to the largest |logit|: the base weights rounded to bf16 and
 * each base GEMM's input too (2^-9 relative each). Measured 3e-3 to 1e-2 on these fixtures, except rsLoRA
 * on every linear layer (1.07e-1): its adapter effect is the largest, and its two LoRA GEMMs run in bf16
 * as under torch.autocast (x, A·x and scaling·B rounded), on top of the rounded base activations.
 */
const BF16_TOL = 2e-2;
const CASE_TOL: Record<string, number> = { 'llama-lora-rslora-all-linear': 1.2e-1 };
/**
 * Native against js in bf16: the same arithmetic, but an f32 difference of one ulp in a GEMM input can
 * round it to a neighbouring bf16 value (2^-8 apart), so the two agree to bf16 resolution, not f32's.
 */
const BACKEND_TOL = 2e-3;

interface AdapterRefs {
  adapted: number[];
  disabled: number[];
}

/** max |got − want| / max |want|. */
function relError(got: readonly number[], want: readonly number[]): number {
  assert.equal(got.length, want.length);
  const scale = Math.max(...want.map(Math.abs));
  return Math.max(...got.map((v, i) => Math.abs(v - want[i]!))) / scale;
}

function bf16Logits(backend: Backend, c: { name: string; base: string }): { adapted: number[]; disabled: number[] } {
  const peft = PeftModel.fromPretrained(loadModel(caseDir(c.base), { backend, dtype: 'bf16' }), join(ADAPTERS, c.name));
  try {
    const inputs = refInputs(refsOf(c.base), backend);
    const run = () => noGrad(() => scope(() => peft.forward(inputs as ModelInputs as never).toNumbers()));
    return { adapted: run(), disabled: peft.disableAdapter(run) };
  } finally {
    peft.dispose();
  }
}

describe('PEFT adapters in bf16 mixed precision', () => {
  const backend = getBackend(nativeAvailable() ? 'native' : 'js');
  for (const c of manifest.cases) {
    const tol = CASE_TOL[c.name] ?? BF16_TOL;
    test(`${c.name} (${c.peft_type} on ${c.base}): within ${tol} of PEFT's f32 logits`, () => {
      const refs = JSON.parse(readFileSync(join(ADAPTERS, c.name, 'refs.json'), 'utf8')) as AdapterRefs;
      const got = bf16Logits(backend, c);
      const errAdapted = relError(got.adapted, refs.adapted);
      const errDisabled = relError(got.disabled, refs.disabled);
      const effect = relError(refs.disabled, refs.adapted);
      assert.ok(errAdapted <= tol, `adapted logits are ${errAdapted.toExponential(2)} (relative) from PEFT's`);
      assert.ok(errDisabled <= tol, `disabled logits are ${errDisabled.toExponential(2)} (relative) from PEFT's`);
      assert.ok(effect > 5 * tol, `the adapter's effect (${effect.toExponential(2)}) is too small to test`);
    });
  }

  test(`native and js compute the same bf16 logits (${BACKEND_TOL} relative)`, { skip: !nativeAvailable() }, () => {
    for (const c of manifest.cases.filter((x) => x.peft_type === 'VERA').slice(0, 3)) {
      const [nat, js] = [getBackend('native'), getBackend('js')].map((b) => bf16Logits(b, c).adapted);
      const err = relError(nat!, js!);
      assert.ok(err <= BACKEND_TOL, `${c.name}: native bf16 differs from js bf16 by ${err.toExponential(2)}`);
    }
  });
});
