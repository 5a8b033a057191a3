#!/usr/bin/env node
// One-shot, idempotent project set-up, run before `npm test`, `npm run demo` and `npm run bench`
// (their pre-scripts) and by `npm run setup` / `npm run build`. Plain Node ESM without dependencies,
// because it runs before node_modules exists. Each step is skipped when it is up to date:
//   (a) npm packages   node_modules missing or older than package.json / package-lock.json
//   (b) system packages libdnnl-dev and a C++ tool chain (apt-get when root, else a hint)
//   (c) native addon    build/Release/vera_native.node missing or older than binding.gyp, native/src
//   (d) CUDA addon      build/Release/vera_cuda.node when nvcc ≥ 11.8 and cuBLASLt are found
//                       (scripts/build-cuda.mjs; otherwise one line says why it is skipped)
//   (e) TypeScript      tsc -p tsconfig.json (incremental)
//   (f) PostgreSQL      before `npm test` (or with --test): Debian's postgresql server binaries, which the
//                       adapter store's tests start a throwaway cluster with (apt-get when root, else a hint)
//   (g) MPI addon       build/Release/vera_mpi.node when mpicxx or the MPI headers are found
//                       (scripts/build-mpi.mjs; otherwise one line says why it is skipped); before
//                       `npm test` (or --test) Debian's libopenmpi-dev and openmpi-bin are installed
//                       first when root and missing (a hint otherwise), for the data-parallel tests
// Flags: --skip-install (no npm/apt), --native-only (no TypeScript build), --bench (also install the
// benchmark peers: Debian's PyTorch with OpenBLAS, which bench/ compares against).
// Env: VERA_REQUIRE_NATIVE=1 makes a missing or failed native build an error;
//      VERA_REQUIRE_MPI=1 makes a failed MPI addon build an error;
//      VERA_SETUP_ASSUME_NONROOT=1 takes the non-root path even as root (for testing).

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCuda } from './build-cuda.mjs';
import { buildMpi, findMpi } from './build-mpi.mjs';
import { mtime, which } from './paths.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const SKIP_INSTALL = args.has('--skip-install');
const NATIVE_ONLY = args.has('--native-only');
const BENCH = args.has('--bench');
const TEST = args.has('--test') || process.env.npm_lifecycle_event === 'pretest';
const REQUIRE_NATIVE = process.env.VERA_REQUIRE_NATIVE === '1';
const IS_ROOT =
  typeof process.getuid === 'function' && process.getuid() === 0 && process.env.VERA_SETUP_ASSUME_NONROOT !== '1';

const ADDON = join(ROOT, 'build', 'Release', 'vera_native.node');
const ADDON_STAMP = join(ROOT, 'build', 'Release', '.vera-setup-stamp');
const NPM_STAMP = join(ROOT, 'node_modules', '.vera-setup-stamp');
const NATIVE_LOG = join(ROOT, '.cache', 'native-build.log');
const APT_PACKAGES = { dnnl: 'libdnnl-dev', cxx: 'g++', make: 'make', python3: 'python3' };

const t0 = Date.now();
const log = (msg) => console.log(`[setup] ${msg}`);
const warn = (msg) => console.warn(`[setup] warning: ${msg}`);
const fail = (msg) => {
  console.error(`[setup] error: ${msg}`);
  process.exit(1);
};

/** mtime in ms, or -Infinity when the path does not exist. */
/** Newest mtime of the files under `dir` (recursive), -Infinity when empty or missing. */
function newestUnder(dir) {
  let newest = -Infinity;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return newest;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestUnder(p) : mtime(p));
  }
  return newest;
}

function touch(p) {
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, `${new Date().toISOString()}\n`);
}

/** Runs a command with inherited stdio; returns its exit status (null when it could not start). */
function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { cwd: ROOT, stdio: 'inherit', ...opts });
  if (r.error) {
    warn(`could not start ${cmd}: ${r.error.message}`);
    return null;
  }
  return r.status;
}

// ---- (a) npm packages ---------------------------------------------------------------------------

function npmPackages() {
  const lock = join(ROOT, 'package-lock.json');
  const nm = join(ROOT, 'node_modules');
  const hasLock = existsSync(lock);
  const wanted = Math.max(mtime(join(ROOT, 'package.json')), mtime(lock));
  // npm rewrites node_modules/.package-lock.json on every install; our stamp is written after it.
  const have = Math.max(mtime(NPM_STAMP), mtime(join(nm, '.package-lock.json')));
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  let argv;
  if (!existsSync(nm)) argv = hasLock ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund'];
  else if (have < wanted) argv = ['install', '--no-audit', '--no-fund'];
  else return;
  log(`npm ${argv[0]} (node_modules ${existsSync(nm) ? 'out of date' : 'missing'})`);
  // better-sqlite3 builds from source where its prebuilt binary cannot be downloaded (registries
  // only): point node-gyp at the local node headers so it downloads none either.
  const nodedir = findNodeDir();
  const env = nodedir ? { ...process.env, npm_config_nodedir: nodedir } : process.env;
  const status = run(npm, argv, { env });
  if (status !== 0) fail(`npm ${argv[0]} failed (exit ${status})`);
  touch(NPM_STAMP);
}

// ---- (b) system packages ------------------------------------------------------------------------

function findDnnlHeader() {
  const dirs = ['/usr/include', '/usr/local/include', '/opt/intel/oneapi/dnnl/latest/include'];
  for (const extra of (process.env.CPATH ?? '').split(delimiter)) if (extra) dirs.push(extra);
  for (const d of dirs) {
    for (const f of ['oneapi/dnnl/dnnl.h', 'dnnl.h']) if (existsSync(join(d, f))) return join(d, f);
  }
  return null;
}

/** The system prerequisites of the native build that are missing, as apt package names. */
function missingSystemPackages() {
  const missing = [];
  if (!findDnnlHeader()) missing.push(APT_PACKAGES.dnnl);
  if (!which('g++') && !which('c++') && !process.env.CXX) missing.push(APT_PACKAGES.cxx);
  if (!which('make')) missing.push(APT_PACKAGES.make);
  if (!which('python3') && !process.env.PYTHON) missing.push(APT_PACKAGES.python3);
  return missing;
}

function aptListsPresent() {
  try {
    return readdirSync('/var/lib/apt/lists').some((f) => f.endsWith('_Packages') || f.endsWith('_Packages.lz4'));
  } catch {
    return false;
  }
}

/** How to install the missing system packages, when this script could not do it itself. */
let installHint = null;

function systemPackages() {
  let missing = missingSystemPackages();
  if (missing.length === 0) return missing;
  const cmdline = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
  if (SKIP_INSTALL) {
    installHint = `${IS_ROOT ? '' : 'sudo '}${cmdline}`;
    return missing;
  }
  if (!IS_ROOT || !which('apt-get')) {
    // Reported once, by nativeAddon() (or at the end when there is nothing to build).
    installHint = which('apt-get') ? `sudo ${cmdline}` : `the equivalents of Debian's ${missing.join(' ')}`;
    return missing;
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => run('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { env });
  let updated = false;
  if (!aptListsPresent()) {
    log('apt-get update');
    run('apt-get', ['update'], { env });
    updated = true;
  }
  log(cmdline);
  let status = install();
  if (status !== 0 && !updated) {
    log('apt-get install failed; retrying after apt-get update');
    run('apt-get', ['update'], { env });
    status = install();
  }
  if (status !== 0) warn(`apt-get install failed (exit ${status})`);
  missing = missingSystemPackages();
  if (missing.length > 0) warn(`still missing after apt-get: ${missing.join(' ')}`);
  return missing;
}

// ---- (c) native addon ---------------------------------------------------------------------------

/** A node install prefix with include/node/node_api.h, so node-gyp needs no header download. */
function findNodeDir() {
  const candidates = [];
  if (process.env.npm_config_nodedir) candidates.push(process.env.npm_config_nodedir);
  candidates.push(resolve(dirname(process.execPath), '..'));
  candidates.push('/usr', '/usr/local');
  for (const c of candidates) if (existsSync(join(c, 'include', 'node', 'node_api.h'))) return c;
  return null;
}

function nativeAddon(missing) {
  const gyp = join(ROOT, 'binding.gyp');
  if (!existsSync(gyp)) {
    log('native: no binding.gyp, skipping');
    return;
  }
  const sources = Math.max(
    mtime(gyp),
    newestUnder(join(ROOT, 'native', 'src')),
    newestUnder(join(ROOT, 'native', 'include')),
  );
  const built = Math.max(mtime(ADDON), existsSync(ADDON) ? mtime(ADDON_STAMP) : -Infinity);
  if (built >= sources) {
    log('native: up to date');
    return;
  }
  const nativeFailed = (why) => {
    if (REQUIRE_NATIVE) fail(`native addon: ${why} (VERA_REQUIRE_NATIVE=1)`);
    warn(`native addon not built (${why}); the engine falls back to the pure-TS js backend`);
  };
  if (missing.length > 0) {
    const hint = installHint ? `; install them with: ${installHint}` : '';
    installHint = null;
    return nativeFailed(`missing ${missing.join(' ')}${hint}`);
  }
  const nodeGyp = join(ROOT, 'node_modules', '.bin', process.platform === 'win32' ? 'node-gyp.cmd' : 'node-gyp');
  if (!existsSync(nodeGyp)) return nativeFailed('node_modules/.bin/node-gyp not found (run npm install)');

  const nodedir = findNodeDir();
  const common = ['--jobs=max'];
  if (nodedir) common.push(`--nodedir=${nodedir}`);
  // configure only when the Makefile is missing or older than binding.gyp; `build` is incremental
  // (node-gyp rebuild would also wipe build/, including the benchmark binaries in build/bench).
  const makefile = join(ROOT, 'build', 'Makefile');
  const steps =
    mtime(makefile) >= mtime(gyp) && existsSync(join(ROOT, 'build', 'config.gypi'))
      ? ['build']
      : ['configure', 'build'];
  log(`native: node-gyp ${steps.join(' + ')}${nodedir ? ` (headers from ${nodedir})` : ''}`);
  mkdirSync(dirname(NATIVE_LOG), { recursive: true });
  let out = '';
  for (const step of steps) {
    const r = spawnSync(nodeGyp, [step, ...common], { cwd: ROOT, encoding: 'utf8', maxBuffer: 256 << 20 });
    out += `$ node-gyp ${step} ${common.join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? `${r.error.message}\n` : ''}`;
    writeFileSync(NATIVE_LOG, out);
    if (r.status !== 0 || (step === 'build' && !existsSync(ADDON))) {
      // A stale addon would be loaded silently with kernels that no longer match the sources.
      rmSync(ADDON, { force: true });
      rmSync(ADDON_STAMP, { force: true });
      const errors = out.split('\n').filter((l) => /\berror\b/i.test(l) && !l.startsWith('gyp ERR!'));
      if (REQUIRE_NATIVE) console.error(errors.slice(0, 30).join('\n'));
      const first = errors[0] ? `: ${errors[0].trim().slice(0, 200)}` : '';
      return nativeFailed(`node-gyp ${step} failed${first} (full log: ${relative(ROOT, NATIVE_LOG)})`);
    }
  }
  touch(ADDON_STAMP);
  log(`native: built ${relative(ROOT, ADDON)}`);
}

// ---- (d) TypeScript -----------------------------------------------------------------------------

function typescript() {
  const tsc = join(ROOT, 'node_modules', '.bin', process.platform === 'win32' ? 'tsc.cmd' : 'tsc');
  if (!existsSync(tsc)) fail('node_modules/.bin/tsc not found (run npm install, or drop --skip-install)');
  log('tsc -p tsconfig.json');
  const status = run(tsc, ['-p', 'tsconfig.json']);
  if (status !== 0) fail(`TypeScript build failed (exit ${status})`);
}

// ---- (e) benchmark peers ------------------------------------------------------------------------

/** PyTorch for Debian's python (the peer of bench/gpt2-step.ts), with OpenMP OpenBLAS so it runs at its best. */
function benchPeers() {
  const python = process.env.VERA_PEER_PYTHON ?? '/usr/bin/python3';
  const hasTorch = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
  const hasOmpBlas =
    existsSync('/usr/lib/x86_64-linux-gnu/openblas-openmp') || existsSync('/usr/lib/aarch64-linux-gnu/openblas-openmp');
  const missing = [...(hasTorch ? [] : ['python3-torch']), ...(hasOmpBlas ? [] : ['libopenblas0-openmp'])];
  if (missing.length === 0) return;
  if (!IS_ROOT || !which('apt-get')) {
    warn(
      `benchmark peers missing (PyTorch comparisons will be empty); install: sudo apt-get install -y ${missing.join(' ')}`,
    );
    return;
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  log(`apt-get install -y ${missing.join(' ')} (benchmark peers)`);
  if (!aptListsPresent()) run('apt-get', ['update'], { env });
  if (run('apt-get', ['install', '-y', ...missing], { env }) !== 0) warn('installing the benchmark peers failed');
}

// ---- (f) PostgreSQL for the store tests ---------------------------------------------------------

/** Debian's server binaries (/usr/lib/postgresql/N/bin/initdb), or initdb on PATH, or $VERA_PG_BIN. */
function hasPostgresServer() {
  if (process.env.VERA_PG_BIN) return existsSync(join(process.env.VERA_PG_BIN, 'initdb'));
  try {
    if (readdirSync('/usr/lib/postgresql').some((v) => existsSync(join('/usr/lib/postgresql', v, 'bin', 'initdb'))))
      return true;
  } catch {
    // not Debian's layout
  }
  return which('initdb') !== null;
}

function postgresServer() {
  if (hasPostgresServer()) return;
  if (!IS_ROOT || !which('apt-get')) {
    // test/helpers/postgres.ts fails those tests with the same hint: CI must run them, not skip them.
    warn('the adapter store tests need a PostgreSQL server; install it with: sudo apt-get install -y postgresql');
    return;
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => run('apt-get', ['install', '-y', '--no-install-recommends', 'postgresql'], { env });
  log('apt-get install -y --no-install-recommends postgresql (for the store tests)');
  if (!aptListsPresent()) run('apt-get', ['update'], { env });
  if (install() !== 0) {
    run('apt-get', ['update'], { env });
    if (install() !== 0) warn('installing postgresql failed; the store tests will fail');
  }
}

// ---- MPI for data-parallel CPU training ---------------------------------------------------------

/** Debian's Open MPI (compiler wrapper, headers, mpirun) for the data-parallel tests, when root and missing. */
function mpiPackages() {
  const missing = [...(findMpi() ? [] : ['libopenmpi-dev']), ...(which('mpirun') ? [] : ['openmpi-bin'])];
  if (missing.length === 0) return;
  if (!IS_ROOT || !which('apt-get')) {
    warn(`multi-process training tests need Open MPI; install it with: sudo apt-get install -y ${missing.join(' ')}`);
    return;
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = () => run('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { env });
  log(`apt-get install -y --no-install-recommends ${missing.join(' ')} (for the data-parallel tests)`);
  if (!aptListsPresent()) run('apt-get', ['update'], { env });
  if (install() !== 0) {
    run('apt-get', ['update'], { env });
    if (install() !== 0) warn('installing Open MPI failed; the data-parallel tests will be skipped');
  }
}

// ---- main ---------------------------------------------------------------------------------------

if (!SKIP_INSTALL) npmPackages();
const missing = systemPackages();
nativeAddon(missing);
if (installHint) warn(`the native backend needs system packages; install them with: ${installHint}`);
// A failed CUDA build is reported and leaves the CPU set-up intact (VERA_REQUIRE_CUDA=1 makes it fatal).
if ((await buildCuda()) === 'failed' && process.env.VERA_REQUIRE_CUDA === '1')
  fail('CUDA addon build failed (VERA_REQUIRE_CUDA=1)');
// Never fatal: without MPI the data-parallel tests skip (or fail under VERA_REQUIRE_MPI=1), the rest is unaffected.
if (TEST && !SKIP_INSTALL) mpiPackages();
if (buildMpi() === 'failed' && process.env.VERA_REQUIRE_MPI === '1')
  fail('MPI addon build failed (VERA_REQUIRE_MPI=1)');
if (!NATIVE_ONLY) typescript();
if (BENCH && !SKIP_INSTALL) benchPeers();
if (TEST && !SKIP_INSTALL) postgresServer();
log(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
