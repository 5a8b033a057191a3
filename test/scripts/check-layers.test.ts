// scripts/check-layers.mjs (run by `npm run lint`): on small src/ trees written here it names file:line
// and the rule for each kind of violation (layer, contract, registry; value, type, re-export and
// dynamic imports), accepts an allow-listed violation, fails on an allow-list entry that matches nothing,
// and passes on this repository's src/ (whose allow-list is empty).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = join(ROOT, 'scripts/check-layers.mjs');

/** A repository root holding src/ with these files (path → text). */
function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'vera-layers-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

function check(root: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [SCRIPT, '--root', root], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A minimal legal tree: the contract (with the dtypes), a concrete backend on it, the registry. */
const LEGAL: Record<string, string> = {
  'src/backends/dtype.ts': 'export type DType = "f32";\n',
  'src/tensor/creation.ts':
    "import { defaultBackend } from '../backends/registry.js';\nexport const b = defaultBackend;\n",
  'src/backends/backend.ts': "import type { DType } from './dtype.js';\nexport interface Backend { d: DType }\n",
  'src/backends/philox.ts': 'export const philox = 1;\n',
  'src/backends/js/index.ts':
    "import type { Backend } from '../backend.js';\nimport type { DType } from '../dtype.js';\nimport { philox } from '../philox.js';\nimport { helper } from './helper.js';\nexport const js = { philox, helper } as unknown as Backend;\nexport type D = DType;\n",
  'src/backends/js/helper.ts': 'export const helper = 2;\n',
  'src/backends/registry.ts': "import { js } from './js/index.js';\nexport const defaultBackend = () => js;\n",
  'src/models/pretrained.ts':
    "import { b } from '../tensor/creation.js';\nimport { join } from 'node:path';\nexport const m = [b, join];\n",
  'src/generate/kv.ts': "import type { m } from '../models/pretrained.js';\nexport type K = typeof m;\n",
};

describe('scripts/check-layers.mjs', () => {
  test('a legal tree passes', () => {
    const r = check(tree(LEGAL));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /follows the layer rules/);
  });

  test('each violation fails with file:line, the import and the rule', () => {
    const r = check(
      tree({
        ...LEGAL,
        // models → generate, as a type import on line 2
        'src/models/llama.ts':
          "import { m } from './pretrained.js';\nimport type { K } from '../generate/kv.js';\nexport const x: K = m;\n",
        // a concrete backend outside the registry, re-exported
        'src/ops/matmul.ts': "export { js } from '../backends/js/index.js';\n",
        // a backend reaching past the contract
        'src/backends/cuda/index.ts':
          "import { helper } from '../js/helper.js';\nimport { b } from '../../tensor/creation.js';\nexport const c = [helper, b];\n",
        // experiments → cli, dynamically and in a type
        'src/experiments/runner.ts':
          "export const demo = () => import('../cli/demo.js');\nexport type Demo = typeof import('../cli/demo.js');\n",
        'src/cli/demo.ts': 'export const run = 1;\n',
        // a folder the table does not know
        'src/extras/x.ts': "import { b } from '../tensor/creation.js';\nexport const y = b;\n",
      }),
    );
    assert.equal(r.status, 1);
    const expect = [
      /src\/models\/llama\.ts:2: imports '\.\.\/generate\/kv\.js' \(src\/generate\/kv\.ts\): layer: models may import .* — not generate/,
      /src\/ops\/matmul\.ts:1: .*registry: nothing imports a concrete backend \(src\/backends\/js\/\) except src\/backends\/registry\.ts/,
      /src\/backends\/cuda\/index\.ts:1: .*registry: nothing imports a concrete backend/,
      /src\/backends\/cuda\/index\.ts:2: .*contract: src\/backends\/cuda\/ depends on the backend contract only/,
      /src\/experiments\/runner\.ts:1: .*layer: experiments may import .* — not cli/,
      /src\/experiments\/runner\.ts:2: .*layer: experiments may import .* — not cli/,
      /src\/extras\/x\.ts:1: .*layer: src\/extras has no row in the layer table/,
    ];
    for (const re of expect) assert.match(r.stderr, re);
    assert.match(r.stderr, /7 problem\(s\)/);
  });

  test('an allow-listed violation is reported, not failed; an entry that matches nothing fails', async () => {
    const mod = (await import(pathToFileURL(SCRIPT).href)) as {
      KNOWN: unknown[];
      checkLayers(
        root: string,
        allowed?: { from: string; to: string; why: string }[],
      ): { violations: string[]; known: string[]; stale: string[] };
    };
    assert.deepEqual(mod.KNOWN, [], 'the repository allows no violation');
    const entry = { from: 'src/backends/', to: 'src/tensor/creation.ts', why: 'a test' };
    const violating = {
      ...LEGAL,
      'src/backends/js/helper.ts': "import { b } from '../../tensor/creation.js';\nexport const helper = b;\n",
    };
    const allowed = mod.checkLayers(tree(violating), [entry]);
    assert.deepEqual(allowed.violations, []);
    assert.deepEqual(allowed.known, ['src/backends/* → src/tensor/creation.ts: 1 imports (a test)']);
    assert.match(mod.checkLayers(tree(violating)).violations.join('\n'), /helper\.ts:1: .*contract/);
    const stale = mod.checkLayers(tree(LEGAL), [entry]).stale;
    assert.match(
      stale.join(''),
      /allow-list entry src\/backends\/\* → src\/tensor\/creation\.ts matches no import any more/,
    );
  });

  test('the layer table is acyclic, and a cycle in a table is found', async () => {
    const mod = (await import(pathToFileURL(SCRIPT).href)) as {
      LAYERS: Record<string, string[]>;
      tableCycle(t?: Record<string, string[]>): string[] | null;
    };
    assert.equal(mod.tableCycle(), null);
    assert.deepEqual(mod.tableCycle({ a: ['b'], b: ['c'], c: ['a'] }), ['a', 'b', 'c', 'a']);
    assert.ok(!mod.LAYERS['models']!.includes('generate'));
  });

  test("this repository's src/ follows the rules", () => {
    const r = spawnSync(process.execPath, [SCRIPT], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });
});
