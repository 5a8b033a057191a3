// A throwaway PostgreSQL cluster for tests: initdb into a temporary folder, pg_ctl start on a free
// loopback port (fsync off: nothing here must survive a power loss, but commits survive the server being
// killed, as restart tests need), stopped and deleted by stop() or when the process exits. As root the server runs as the `postgres` user (or `nobody`), since
// PostgreSQL refuses to run as root. Binaries: $VERA_PG_BIN, else Debian's /usr/lib/postgresql/N/bin,
// else PATH; when none is found and we are root, Debian's `postgresql` package is installed with
// apt-get (scripts/setup.mjs does the same before `npm test`); otherwise the test fails saying what to
// install. Tests must not skip here: CI runs them against a real server.

import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface PgCluster {
  /** A connection URL for `db` (default: the cluster's `postgres` database). */
  url(db?: string): string;
  /** Creates a fresh database and returns its URL. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server, keeping the data (for restart tests); start() brings it back on the same port. */
  stopServer(): void;
  startServer(): void;
  /** Stops the server and deletes everything. */
  stop(): void;
}

const isRoot = () => typeof process.getuid === 'function' && process.getuid() === 0;

function findBin(): string | null {
  const forced = process.env['VERA_PG_BIN'];
  if (forced) return existsSync(join(forced, 'initdb')) ? forced : null;
  const base = '/usr/lib/postgresql';
  if (existsSync(base)) {
    const versions = readdirSync(base)
      .filter((v) => existsSync(join(base, v, 'bin', 'initdb')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(base, versions[0], 'bin');
  }
  for (const dir of (process.env['PATH'] ?? '').split(':'))
    if (dir && existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir;
  return null;
}

function aptInstall(): void {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () =>
    spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'postgresql'], { env, stdio: 'inherit' });
  if (install().status !== 0) {
    spawnSync('apt-get', ['update'], { env, stdio: 'inherit' });
    install();
  }
}

export function postgresBin(): string {
  let bin = findBin();
  if (!bin && !process.env['VERA_PG_BIN'] && isRoot() && existsSync('/usr/bin/apt-get')) {
    aptInstall();
    bin = findBin();
  }
  if (!bin)
    throw new Error(
      'PostgreSQL server binaries (initdb, pg_ctl) not found: these tests need a real PostgreSQL. Install ' +
        "Debian's postgresql package (apt-get install postgresql; `npm test` as root does it) or set VERA_PG_BIN to their folder",
    );
  return bin;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function check(r: SpawnSyncReturns<string>, what: string, log?: string): void {
  if (r.status === 0) return;
  const tail = log && existsSync(log) ? `\n${readFileSync(log, 'utf8').slice(-2000)}` : '';
  throw new Error(`${what} failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr}${r.stdout}${tail}`);
}

export async function startPostgres(): Promise<PgCluster> {
  const bin = postgresBin();
  // PostgreSQL will not run as root: as root, run it as an unprivileged user owning the folder.
  const user = isRoot() ? (spawnSync('id', ['-u', 'postgres']).status === 0 ? 'postgres' : 'nobody') : null;
  const dir = mkdtempSync(join(tmpdir(), 'vera-pg-'));
  if (user) {
    const uid = Number(spawnSync('id', ['-u', user], { encoding: 'utf8' }).stdout);
    const gid = Number(spawnSync('id', ['-g', user], { encoding: 'utf8' }).stdout);
    chownSync(dir, uid, gid);
  }
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  const run = (tool: string, args: string[]) => {
    const cmd = user ? 'runuser' : join(bin, tool);
    const argv = user ? ['-u', user, '--', join(bin, tool), ...args] : args;
    return spawnSync(cmd, argv, { cwd: dir, encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  };
  check(
    run('initdb', [
      '-D',
      data,
      '-U',
      'vera',
      '-A',
      'trust',
      '--no-sync',
      '-E',
      'UTF8',
      '--locale=C',
      '--no-instructions',
    ]),
    'initdb',
  );
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=100`;
  let running = false;
  const startServer = () => {
    check(run('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '60', '-o', options, 'start']), 'pg_ctl start', log);
    running = true;
  };
  const stopServer = () => {
    if (running) run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
    running = false;
  };
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    stopServer();
    rmSync(dir, { recursive: true, force: true });
  };
  // A test process that dies without its after() hook still leaves no server behind.
  process.once('exit', stop);
  try {
    startServer();
  } catch (e) {
    stop();
    throw e;
  }
  const url = (db = 'postgres') => `postgres://vera@127.0.0.1:${port}/${db}`;
  return {
    url,
    async createDatabase(name) {
      const c = new pg.Client({ connectionString: url() });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE "${name}"`);
      } finally {
        await c.end();
      }
      return url(name);
    },
    stopServer,
    startServer,
    stop,
  };
}
