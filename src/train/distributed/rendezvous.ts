// NCCL's id from rank 0 to the other ranks, over TCP at MASTER_ADDR:MASTER_PORT (VERA_RENDEZVOUS_PORT
// overrides the port): NCCL needs this one out-of-band hand-over before its communicator exists; every
// collective after it is NCCL's. Rank 0 listens until each other rank has asked once; the others retry
// until it is up. A rank that names another group size is refused, and a rank that never comes ends
// the wait after VERA_RENDEZVOUS_TIMEOUT_S seconds (default 300) with an error naming it.

import { type Socket, connect, createServer } from 'node:net';

const HELLO = 'vera-nccl-id';
const ID_BYTES = 128;

function settings(env: NodeJS.ProcessEnv): { host: string; port: number; timeoutMs: number } {
  const raw = env['VERA_RENDEZVOUS_PORT'] || env['MASTER_PORT'];
  const port = Number(raw);
  if (!raw || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new Error(
      `[distributed] MASTER_PORT must name rank 0's TCP port for the NCCL rendezvous, got ${JSON.stringify(raw ?? null)}`,
    );
  const t = Number(env['VERA_RENDEZVOUS_TIMEOUT_S'] ?? 300);
  if (!(t > 0))
    throw new Error(
      `[distributed] VERA_RENDEZVOUS_TIMEOUT_S must be a positive number of seconds, got ${env['VERA_RENDEZVOUS_TIMEOUT_S']}`,
    );
  return { host: env['MASTER_ADDR'] || '127.0.0.1', port, timeoutMs: t * 1000 };
}

/** Reads until `n` bytes, a newline (`line`), or the end have come. */
function readBytes(sock: Socket, n: number, line = false): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= n || (line && got.includes(10))) done();
    };
    const done = () => {
      sock.off('data', onData);
      resolve(got);
    };
    sock.on('data', onData);
    sock.once('end', done);
    sock.once('error', reject);
  });
}

/** Rank 0: hands `id` to ranks 1 … size−1, each once. */
function serve(id: Uint8Array, size: number, host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const served = new Set<number>();
    const server = createServer((sock) => {
      sock.setTimeout(10_000, () => sock.destroy());
      void readBytes(sock, 64, true).then(
        (b) => {
          const m = new RegExp(`^${HELLO} (\\d+) (\\d+)\\n`).exec(b.toString('latin1'));
          if (!m) return sock.destroy();
          const [rank, theirs] = [Number(m[1]), Number(m[2])];
          if (theirs !== size || rank < 1 || rank >= size) {
            sock.end(`refused: rank 0 leads a group of ${size}, but this rank says it is rank ${rank} of ${theirs}\n`);
            return;
          }
          sock.end(Buffer.concat([Buffer.from('ok\n'), Buffer.from(id)]));
          served.add(rank);
          if (served.size === size - 1) finish(null);
        },
        () => sock.destroy(),
      );
    });
    const timer = setTimeout(() => {
      const missing = Array.from({ length: size - 1 }, (_, i) => i + 1).filter((r) => !served.has(r));
      finish(
        new Error(
          `[distributed] rank 0 waited ${timeoutMs / 1000} s on port ${port} for rank(s) ${missing.join(', ')} of ${size}, which never came`,
        ),
      );
    }, timeoutMs);
    const finish = (e: Error | null) => {
      clearTimeout(timer);
      server.close();
      if (e) reject(e);
      else resolve();
    };
    server.once('error', (e) =>
      finish(new Error(`[distributed] rank 0 cannot listen on ${host}:${port} for the NCCL rendezvous: ${e.message}`)),
    );
    // Every interface when MASTER_ADDR names another machine's view of this one; loopback otherwise.
    server.listen(port, host === '127.0.0.1' || host === 'localhost' ? host : '0.0.0.0');
  });
}

/** Ranks 1 …: asks rank 0 for the id, retrying while it is not listening yet. */
async function fetchId(rank: number, size: number, host: string, port: number, timeoutMs: number): Promise<Uint8Array> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const reply = await new Promise<Buffer>((resolve, reject) => {
        const sock = connect({ host, port }, () => sock.write(`${HELLO} ${rank} ${size}\n`));
        sock.setTimeout(10_000, () => sock.destroy(new Error('no answer in 10 s')));
        readBytes(sock, 3 + ID_BYTES).then(resolve, reject);
        sock.once('error', reject);
      });
      const text = reply.toString('latin1');
      if (text.startsWith('ok\n') && reply.length === 3 + ID_BYTES) return new Uint8Array(reply.subarray(3));
      if (text.startsWith('refused')) throw new Error(`[distributed] ${text.trim()}`);
      last = 'a short answer';
    } catch (e) {
      if ((e as Error).message.startsWith('[distributed]')) throw e;
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(
    `[distributed] rank ${rank} of ${size} could not get the NCCL id from rank 0 at ${host}:${port} in ${timeoutMs / 1000} s (${last})`,
  );
}

/** Rank 0's NCCL id on every rank (rank 0 passes it in; the others pass null). */
export async function exchangeId(
  rank: number,
  size: number,
  id: Uint8Array | null,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Uint8Array> {
  if (rank === 0) {
    if (!id || id.length !== ID_BYTES) throw new Error(`[distributed] rank 0 must pass NCCL's ${ID_BYTES}-byte id`);
    if (size > 1) {
      const s = settings(env);
      await serve(id, size, s.host, s.port, s.timeoutMs);
    }
    return id;
  }
  const s = settings(env);
  return fetchId(rank, size, s.host, s.port, s.timeoutMs);
}
