// The reference fixtures on the cuda backend: every model's logits within 1e-4 + 1e-4·|ref| of
// transformers' float32 logits (f32 GEMMs compute in f32 there), greedy generation with the KV cache
// equal to transformers' tokens, and every PEFT adapter's adapted and merged logits within PEFT's 1e-4.
// Skipped, with the reason, where the cuda backend does not load; VERA_REQUIRE_CUDA=1 makes that fail.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { PeftModel } from '../../src/adapters/index.js';
import { noGrad } from '../../src/autograd/graph.js';
import { generate } from '../../src/generate/generate.js';
import { loadModel } from '../../src/models/auto.js';
import type { ModelInputs } from '../../src/models/pretrained.js';
import { scope } from '../../src/tensor/scope.js';
import { assertClose, caseDir, manifest, refInputs, refsOf } from '../models/fixtures.js';
import { cudaOrSkip } from '../helpers/cuda.js';

const ADAPTERS = fileURLToPath(new URL('../../../test/parity/fixtures/adapters/', import.meta.url));

const { backend, skip } = cudaOrSkip();

describe('reference fixtures on cuda', () => {
  for (const c of manifest.cases) {
    test(`${c.name}: logits within 1e-4 of transformers (cuda)`, { skip }, () => {
      const model = loadModel(caseDir(c.name), { backend: backend! });
      const refs = refsOf(c.name);
      const out = noGrad(() => model.forward(refInputs(refs, backend!)));
      const got = out.toArray() as Float32Array;
      out.dispose();
      const err = assertClose(got, refs.logits, 1e-4, 1e-4, `${c.name} on cuda`);
      console.log(`${c.name} cuda: worst |logit error| ${err.toExponential(2)}`);
      if (refs.greedy_prompt && refs.greedy_tokens) {
        const tokens = generate(model, [refs.greedy_prompt], {
          maxNewTokens: refs.greedy_tokens.length,
          stopTokenIds: [],
        })[0]!;
        assert.deepEqual(tokens, refs.greedy_tokens, `${c.name}: greedy tokens on cuda`);
      }
      model.dispose();
    });
  }

  const adapters = JSON.parse(readFileSync(join(ADAPTERS, 'manifest.json'), 'utf8')) as {
    cases: { name: string; base: string; peft_type: string }[];
  };
  for (const c of adapters.cases) {
    test(`${c.name} (${c.peft_type} on ${c.base}): PEFT's logits, adapted and merged (cuda)`, { skip }, () => {
      const refs = JSON.parse(readFileSync(join(ADAPTERS, c.name, 'refs.json'), 'utf8')) as {
        adapted: number[];
        merged: number[];
      };
      const peft = PeftModel.fromPretrained(loadModel(caseDir(c.base), { backend: backend! }), join(ADAPTERS, c.name));
      const inputs = refInputs(refsOf(c.base), backend!);
      const run = () => noGrad(() => scope(() => peft.forward(inputs as ModelInputs as never).toNumbers()));
      assertClose(Float32Array.from(run()), refs.adapted, 1e-4, 1e-4, `${c.name} adapted on cuda`);
      peft.merge();
      assertClose(Float32Array.from(run()), refs.merged, 1e-4, 1e-4, `${c.name} merged on cuda`);
    });
  }
});
