// A second process on a store, for tests: `node store-child.js SPEC MODE NAME N [START]`.
//   puts   N puts of NAME (each config carrying {"writer": pid, "n": i}), starting at time START (ms since
//          the epoch, so that two processes started one after the other put at the same time); prints
//          the versions as JSON
//   crash  one put of NAME that kills this process (SIGKILL) once the new version's bytes are written
//          but before they are current (OpenOptions.onPutStep)

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../src/serve/store/index.js';
import type { AdapterFiles } from '../../src/serve/store/types.js';

const FIXTURE = fileURLToPath(new URL('../../../test/parity/fixtures/adapters/gpt2-vera/', import.meta.url));

export function fixtureFiles(extra: Record<string, unknown> = {}): AdapterFiles {
  const config = JSON.parse(readFileSync(`${FIXTURE}adapter_config.json`, 'utf8')) as Record<string, unknown>;
  return {
    'adapter_config.json': Buffer.from(JSON.stringify({ ...config, ...extra })),
    'adapter_model.safetensors': readFileSync(`${FIXTURE}adapter_model.safetensors`),
  };
}

async function main(spec: string, mode: string, name: string, n: number, start: number): Promise<void> {
  if (mode === 'crash') {
    const store = await openStore(spec, { onPutStep: () => process.kill(process.pid, 'SIGKILL') });
    await store.put(name, fixtureFiles({ crashed: true }), null);
    throw new Error('the put completed: onPutStep was not called');
  }
  const store = await openStore(spec);
  await new Promise((r) => setTimeout(r, Math.max(0, start - Date.now())));
  const versions: number[] = [];
  for (let i = 0; i < n; i++)
    versions.push((await store.put(name, fixtureFiles({ writer: process.pid, n: i }), null)).version);
  await store.close();
  process.stdout.write(`${JSON.stringify(versions)}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [spec, mode, name, n, start] = process.argv.slice(2);
  main(spec!, mode!, name!, Number(n ?? 1), Number(start ?? 0)).catch((e: unknown) => {
    process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
