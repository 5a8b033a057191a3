// Loading must not need a second copy of the checkpoint in memory: a ~210 MB BF16 file is read in a
// child process (clean peak-RSS accounting) as bf16 and as f32, and the peak RSS growth is checked:
// below 1.5× the file size for bf16 storage (the data itself is 1×, the chunked reader adds a few MB).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { writeBigFile } from '../../bench/safetensors-fuzz.js';
import { defaultBackend } from '../../src/backends/registry.js';
import { SafetensorsReader } from '../../src/io/safetensors.js';
import type { DType } from '../../src/backends/dtype.js';

interface ChildJob {
  path: string;
  warmup: string;
  dtype: DType;
}

/** Child mode: load every tensor of the file, keep them alive, report the RSS before and the peak after. */
function child(job: ChildJob): void {
  const backend = defaultBackend();
  const w = SafetensorsReader.open(job.warmup); // first-use costs (code, tables, scratch) before the baseline
  for (const n of w.names()) w.tensor(n, { backend, dtype: job.dtype }).dispose();
  w.close();
  const base = process.memoryUsage().rss;
  const t0 = performance.now();
  const r = SafetensorsReader.open(job.path);
  const kept = r.names().map((n) => r.tensor(n, { backend, dtype: job.dtype }));
  const ms = performance.now() - t0;
  r.close();
  const peak = process.resourceUsage().maxRSS * 1024;
  console.log(JSON.stringify({ base, peak, ms, tensors: kept.length, backend: backend.name }));
}

const job = process.env['VERA_IO_MEM_CHILD'];
if (job) child(JSON.parse(job) as ChildJob);
else {
  const dir = mkdtempSync(join(tmpdir(), 'vera-st-mem-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('loading a ~210 MB bf16 file as bf16 grows peak RSS by less than 1.5× its size', (t) => {
    const path = join(dir, 'model.safetensors');
    const size = writeBigFile(path, 'BF16', 10, 10 << 20);
    const warmup = join(dir, 'warmup.safetensors');
    writeBigFile(warmup, 'BF16', 1, 1 << 10);
    const measure = (dtype: DType) => {
      const env = { ...process.env, VERA_IO_MEM_CHILD: JSON.stringify({ path, warmup, dtype }) };
      const res = spawnSync(process.execPath, [fileURLToPath(import.meta.url)], { env, encoding: 'utf8' });
      assert.equal(res.status, 0, res.stderr);
      const line = res.stdout.trim().split('\n').at(-1)!;
      const m = JSON.parse(line) as { base: number; peak: number; ms: number; backend: string };
      return { growth: m.peak - m.base, mbps: size / 1e6 / (m.ms / 1000), backend: m.backend };
    };
    const bf16 = measure('bf16');
    const f32 = measure('f32');
    const mb = (x: number) => (x / 1e6).toFixed(0);
    t.diagnostic(
      `file ${mb(size)} MB (${bf16.backend} backend): as bf16 peak RSS +${mb(bf16.growth)} MB (${(bf16.growth / size).toFixed(2)}×), ` +
        `${bf16.mbps.toFixed(0)} MB/s; as f32 +${mb(f32.growth)} MB (${(f32.growth / size).toFixed(2)}×), ${f32.mbps.toFixed(0)} MB/s`,
    );
    assert.ok(bf16.growth < 1.5 * size, `bf16 load grew RSS by ${bf16.growth} bytes for a ${size}-byte file`);
    assert.ok(f32.growth < 2.5 * size, `f32 load grew RSS by ${f32.growth} bytes (the data alone is 2× the file)`);
  });
}
