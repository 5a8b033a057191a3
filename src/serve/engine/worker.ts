// The engine's thread: a LocalEngine made from workerData (protocol.ts), answering client.ts's messages.
// Adapter files are asked of the main thread (its AdapterSource) by message. The loop of the engine runs
// here, so the main thread's event loop (connections, /health, /metrics) never waits on a forward.
// Started by client.ts as `new Worker(new URL('./worker.js', import.meta.url), { workerData })`.

import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { type BackendName, getBackend } from '../../backends/registry.js';
import { LocalEngine } from './local.js';
import { type FromWorker, type ToWorker, type WorkerInit, fromWire, toWire } from './protocol.js';
import type { AdapterRef, AdapterSource } from './types.js';

/** The nice value of the engine's threads (the main thread stays at the process's). */
const WORKER_NICE = 5;
/** Whether the engine's kernels also run under SCHED_IDLE (VERA_SERVE_IDLE_KERNELS=0 turns it off). */
const WORKER_IDLE = process.env['VERA_SERVE_IDLE_KERNELS'] !== '0';

async function main(init: WorkerInit): Promise<void> {
  const port = parentPort!;
  const send = (m: FromWorker) => port.postMessage(m);
  const asked = new Map<number, { resolve: (f: Record<string, Uint8Array>) => void; reject: (e: Error) => void }>();
  let nextAsk = 0;
  const source: AdapterSource = (ref: AdapterRef) =>
    new Promise((resolve, reject) => {
      const id = nextAsk++;
      asked.set(id, { resolve: resolve as (f: Record<string, Uint8Array>) => void, reject });
      send({ type: 'source', id, ref });
    });
  const calls = new Map<number, AbortController>();
  let engine: LocalEngine | null = null;
  // Messages arriving while the model loads wait for it.
  const early: ToWorker[] = [];

  const handle = (m: ToWorker): void => {
    if (m.type === 'source-reply') {
      const a = asked.get(m.id);
      asked.delete(m.id);
      if (m.error) a?.reject(fromWire(m.error));
      else a?.resolve(m.files!);
      return;
    }
    if (!engine) {
      early.push(m);
      return;
    }
    const e = engine;
    switch (m.type) {
      case 'cancel':
        calls.get(m.id)?.abort();
        return;
      case 'evict':
        e.evict(m.name, m.keepVersion);
        return;
      case 'close':
        clearInterval(timer);
        void e.close().finally(() => {
          send({ type: 'closed' });
          port.close();
        });
        return;
      default: {
        const ctl = new AbortController();
        calls.set(m.id, ctl);
        const opts = { signal: ctl.signal };
        const run =
          m.type === 'generate'
            ? e.generate(
                m.req,
                m.stream ? { ...opts, onToken: (token) => send({ type: 'token', id: m.id, token }) } : opts,
              )
            : m.type === 'classify'
              ? e.classify(m.req, opts)
              : e.embed(m.req, opts);
        run.then(
          (value) => send({ type: 'result', id: m.id, value, stats: e.stats() }),
          (err: unknown) => send({ type: 'error', id: m.id, error: toWire(err), stats: e.stats() }),
        );
        void run.finally(() => calls.delete(m.id)).catch(() => {});
      }
    }
  };
  port.on('message', handle);

  const timer = setInterval(() => engine && send({ type: 'stats', stats: engine.stats() }), init.statsEveryMs);
  timer.unref();
  try {
    engine = await LocalEngine.create({
      ...init.options,
      source,
      ...(init.backend ? { backend: getBackend(init.backend as BackendName) } : {}),
      log: (line) => send({ type: 'log', line }),
    });
  } catch (err) {
    send({ type: 'failed', error: toWire(err) });
    port.close();
    return;
  }
  // The model's kernels yield to the HTTP thread: /health and new connections stay prompt when the
  // machine is saturated (the kernels still take every core nobody else wants).
  engine.model.parameters()[0]?.backend.lowerPriority?.(WORKER_NICE, WORKER_IDLE);
  send({ type: 'ready', info: engine.info, stats: engine.stats() });
  for (const m of early.splice(0)) handle(m);
}

if (!isMainThread && parentPort && (workerData as { veraEngine?: WorkerInit } | null)?.veraEngine)
  void main((workerData as { veraEngine: WorkerInit }).veraEngine);
