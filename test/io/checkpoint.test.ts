// Checkpoint: Hugging Face model directories, single-file and sharded (model.safetensors.index.json),
// adapter directories holding one other .safetensors file, and the errors for what is not loadable.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { getBackend } from '../../src/backends/registry.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { IoError, SafetensorsError } from '../../src/io/errors.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { tensor } from '../../src/tensor/creation.js';
import { f32ToBf16 } from '../../src/backends/dtype.js';

const js = getBackend('js');
const root = mkdtempSync(join(tmpdir(), 'vera-ckpt-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (): string => {
  const d = join(root, String(n++));
  mkdirSync(d);
  return d;
};
const f32 = (values: number[]) => tensor(new Float32Array(values), { backend: js });

/** A two-shard checkpoint as transformers' save_pretrained writes it. */
function sharded(dir: string): void {
  writeSafetensors(
    join(dir, 'model-00001-of-00002.safetensors'),
    {
      'model.embed_tokens.weight': f32([1, 2, 3, 4]),
      'model.layers.0.mlp.up_proj.weight': tensor(Uint16Array.from([1, 2], f32ToBf16), { dtype: 'bf16', backend: js }),
    },
    { format: 'pt' },
  );
  writeSafetensors(
    join(dir, 'model-00002-of-00002.safetensors'),
    { 'lm_head.weight': f32([5, 6]), 'model.norm.weight': f32([7]) },
    { format: 'pt' },
  );
  const index = {
    metadata: { total_size: 28 },
    weight_map: {
      'lm_head.weight': 'model-00002-of-00002.safetensors',
      'model.embed_tokens.weight': 'model-00001-of-00002.safetensors',
      'model.layers.0.mlp.up_proj.weight': 'model-00001-of-00002.safetensors',
      'model.norm.weight': 'model-00002-of-00002.safetensors',
    },
  };
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index, null, 2));
}

const ioError = (file: string, re: RegExp) => (e: unknown) => {
  assert.ok(e instanceof IoError, `expected IoError, got ${String(e)}`);
  assert.equal(e.file, file);
  assert.ok(e.message.includes(file), e.message);
  assert.match(e.message, re);
  return true;
};

describe('Checkpoint', () => {
  test('a single model.safetensors', () => {
    const dir = fresh();
    writeSafetensors(join(dir, 'model.safetensors'), { b: f32([2]), a: f32([1, 1]) });
    writeFileSync(join(dir, 'config.json'), '{}');
    const c = Checkpoint.open(dir);
    assert.equal(c.dir, dir);
    assert.equal(c.indexFile, null);
    assert.deepEqual(c.names(), ['a', 'b']);
    assert.ok(c.has('a') && !c.has('c'));
    assert.deepEqual(c.info('a').shape, [2]);
    assert.deepEqual(c.tensor('a', { backend: js }).toNumbers(), [1, 1]);
    c.close();
    c.close();
  });

  test('a sharded checkpoint through model.safetensors.index.json', () => {
    const dir = fresh();
    sharded(dir);
    const c = Checkpoint.open(dir);
    assert.equal(c.indexFile, join(dir, 'model.safetensors.index.json'));
    assert.deepEqual(c.names(), [
      'lm_head.weight',
      'model.embed_tokens.weight',
      'model.layers.0.mlp.up_proj.weight',
      'model.norm.weight',
    ]);
    assert.deepEqual(c.files(), [
      join(dir, 'model-00002-of-00002.safetensors'),
      join(dir, 'model-00001-of-00002.safetensors'),
    ]);
    assert.deepEqual(c.tensor('lm_head.weight', { backend: js }).toNumbers(), [5, 6]);
    assert.deepEqual(c.tensor('model.layers.0.mlp.up_proj.weight', { backend: js }).toNumbers(), [1, 2]);
    const kept = c.tensor('model.layers.0.mlp.up_proj.weight', { backend: js, dtype: 'bf16' });
    assert.equal(kept.dtype, 'bf16');
    assert.equal(c.info('model.norm.weight').dtype, 'F32');
    assert.throws(
      () => c.tensor('model.embed_tokens.weights'),
      (e: unknown) =>
        e instanceof SafetensorsError && e.file === dir && /did you mean "model\.embed_tokens\.weight"/.test(e.message),
    );
    c.close();
  });

  test('a path to a .safetensors file or an index file works too', () => {
    const dir = fresh();
    sharded(dir);
    assert.deepEqual(Checkpoint.open(join(dir, 'model.safetensors.index.json')).names().length, 4);
    assert.deepEqual(Checkpoint.open(join(dir, 'model-00002-of-00002.safetensors')).names(), [
      'lm_head.weight',
      'model.norm.weight',
    ]);
  });

  test('another *.safetensors.index.json, a lone adapter file, and complete shard sets without an index', () => {
    const a = fresh();
    writeSafetensors(join(a, 'diffusion_pytorch_model-00001-of-00001.safetensors'), { w: f32([1]) });
    writeFileSync(
      join(a, 'diffusion_pytorch_model.safetensors.index.json'),
      JSON.stringify({ weight_map: { w: 'diffusion_pytorch_model-00001-of-00001.safetensors' } }),
    );
    assert.deepEqual(Checkpoint.open(a).names(), ['w']);

    const b = fresh();
    writeSafetensors(join(b, 'adapter_model.safetensors'), { 'base_model.vera_A': f32([1]) }, { format: 'pt' });
    writeFileSync(join(b, 'adapter_config.json'), '{"peft_type":"VERA"}');
    assert.deepEqual(Checkpoint.open(b).names(), ['base_model.vera_A']);

    const c = fresh();
    writeSafetensors(join(c, 'model-00001-of-00002.safetensors'), { x: f32([1]) });
    writeSafetensors(join(c, 'model-00002-of-00002.safetensors'), { y: f32([2]) });
    assert.deepEqual(Checkpoint.open(c).names(), ['x', 'y']);
  });

  test('tensors a shard holds but the index omits are still listed, after the indexed ones', () => {
    const dir = fresh();
    writeSafetensors(join(dir, 's1.safetensors'), { a: f32([1]), extra: f32([9]) });
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 's1.safetensors' } }));
    assert.deepEqual(Checkpoint.open(dir).names(), ['a', 'extra']);
  });
});

describe('Checkpoint errors', () => {
  test('nothing loadable: names the directory, what was expected, and that .bin is not supported', () => {
    const dir = fresh();
    writeFileSync(join(dir, 'pytorch_model.bin'), 'x');
    writeFileSync(join(dir, 'config.json'), '{}');
    assert.throws(
      () => Checkpoint.open(dir),
      ioError(
        dir,
        /no model\.safetensors or model\.safetensors\.index\.json .*found config\.json, pytorch_model\.bin; pytorch_model\.bin \(PyTorch pickle\) is not supported/,
      ),
    );
    const empty = fresh();
    assert.throws(
      () => Checkpoint.open(empty),
      ioError(empty, /the directory is empty; PyTorch \.bin checkpoints \(pytorch_model\.bin\) are not supported/),
    );
    const missing = join(root, 'missing');
    assert.throws(() => Checkpoint.open(missing), ioError(missing, /cannot open: ENOENT/));
  });

  test('several .safetensors files and no index', () => {
    const dir = fresh();
    writeSafetensors(join(dir, 'a.safetensors'), { x: f32([1]) });
    writeSafetensors(join(dir, 'b.safetensors'), { y: f32([1]) });
    assert.throws(
      () => Checkpoint.open(dir),
      ioError(dir, /several \.safetensors files \(a\.safetensors, b\.safetensors\) and no index file/),
    );
  });

  test('index problems: bad JSON, no weight_map, a missing shard, a tensor not in its shard, a path leaving the directory', () => {
    const dir = fresh();
    const index = join(dir, 'model.safetensors.index.json');
    writeFileSync(index, '{"weight_map": {"a": "s1.safetensors",}}');
    assert.throws(() => Checkpoint.open(dir), ioError(index, /invalid JSON at line 1, column 39/));
    writeFileSync(index, '{"metadata": {}}');
    assert.throws(() => Checkpoint.open(dir), ioError(index, /"weight_map" must be an object/));
    writeFileSync(index, JSON.stringify({ weight_map: { a: 's1.safetensors' } }));
    const shard = join(dir, 's1.safetensors');
    assert.throws(
      () => Checkpoint.open(dir),
      (e: unknown) => e instanceof SafetensorsError && e.file === shard && /ENOENT/.test(e.message),
    );
    writeSafetensors(shard, { b: f32([1]) });
    assert.throws(
      () => Checkpoint.open(dir),
      ioError(index, /weight_map puts tensor "a" in s1\.safetensors, which does not hold it/),
    );
    writeFileSync(index, JSON.stringify({ weight_map: { a: '../elsewhere.safetensors' } }));
    assert.throws(() => Checkpoint.open(dir), ioError(index, /points outside the checkpoint directory/));
    writeFileSync(index, JSON.stringify({ weight_map: { a: 3 } }));
    assert.throws(() => Checkpoint.open(dir), ioError(index, /weight_map\["a"\] must be a file name, got 3/));
  });

  test('a malformed shard is a SafetensorsError naming the shard', () => {
    const dir = fresh();
    writeFileSync(join(dir, 'model.safetensors'), Buffer.from([1, 2, 3]));
    assert.throws(
      () => Checkpoint.open(dir),
      (e: unknown) =>
        e instanceof SafetensorsError &&
        e.file === join(dir, 'model.safetensors') &&
        /fewer than the 8-byte header length/.test(e.message),
    );
  });
});
