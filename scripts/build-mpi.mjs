#!/usr/bin/env node
// Builds the MPI collectives' addon, build/Release/vera_mpi.node, from native/mpi/*.cc with the MPI
// C++ compiler wrapper (mpicxx / mpic++, Open MPI from Debian's libopenmpi-dev), or with c++ and the
// headers and library found under /usr/lib/x86_64-linux-gnu/openmpi (or $VERA_MPI_HOME). Called by
// scripts/setup.mjs; also runnable alone (`node scripts/build-mpi.mjs`). Plain Node ESM without
// dependencies. Exits 0 having built, with nothing to do, or skipped (one line says why: the CPU
// build never needs MPI); 1 when a build was attempted and failed.
// Env: VERA_MPICXX (the compiler wrapper), VERA_MPI_HOME (a prefix with include/mpi.h and lib/libmpi.so),
//      VERA_NODE_INCLUDE (a directory holding node_api.h), VERA_REQUIRE_MPI=1 (a skip is an error).

import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mtime, which } from './paths.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const MPI_ADDON = join(ROOT, 'build', 'Release', 'vera_mpi.node');
const SRC = join(ROOT, 'native', 'mpi');
const log = (m) => console.log(`[build-mpi] ${m}`);

function findNodeInclude() {
  const c = [
    process.env.VERA_NODE_INCLUDE,
    join(dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ];
  return c.find((d) => d && existsSync(join(d, 'node_api.h'))) ?? null;
}

/** How to compile against MPI: { cxx, flags } with the wrapper, or with c++ and explicit paths; or null. */
export function findMpi() {
  const wrapper = [process.env.VERA_MPICXX, which('mpicxx'), which('mpic++'), which('mpiCC')].find(
    (p) => p && existsSync(p),
  );
  if (wrapper) return { cxx: wrapper, flags: [], how: wrapper };
  const homes = [
    process.env.VERA_MPI_HOME,
    '/usr/lib/x86_64-linux-gnu/openmpi',
    '/usr/lib/aarch64-linux-gnu/openmpi',
    '/usr/lib64/openmpi',
    '/usr/local',
  ];
  const cxx = which('c++') ?? which('g++');
  if (!cxx) return null;
  for (const h of homes) {
    if (!h || !existsSync(join(h, 'include', 'mpi.h'))) continue;
    const lib = join(h, 'lib');
    if (!existsSync(lib) || !readdirSync(lib).some((f) => f.startsWith('libmpi.so'))) continue;
    return { cxx, flags: [`-I${join(h, 'include')}`, `-L${lib}`, `-Wl,-rpath,${lib}`], how: `${cxx} with ${h}` };
  }
  return null;
}

export function buildMpi({ quiet = false } = {}) {
  const skip = (why) => {
    log(`mpi: skipped (${why}); multi-process CPU training (vera train --nproc, mpirun) is unavailable`);
    return 'skipped';
  };
  const mpi = findMpi();
  if (!mpi)
    return skip('no mpicxx or MPI headers; install them with: sudo apt-get install -y libopenmpi-dev openmpi-bin');
  const nodeInc = findNodeInclude();
  if (!nodeInc) return skip('node_api.h not found; set VERA_NODE_INCLUDE');
  const sources = readdirSync(SRC)
    .filter((f) => f.endsWith('.cc'))
    .map((f) => join(SRC, f));
  const newest = Math.max(...sources.map(mtime), mtime(fileURLToPath(import.meta.url)));
  if (mtime(MPI_ADDON) >= newest) {
    if (!quiet) log('mpi: up to date');
    return 'up-to-date';
  }
  mkdirSync(dirname(MPI_ADDON), { recursive: true });
  const argv = [
    '-std=c++17',
    '-O2',
    '-fPIC',
    '-shared',
    '-Wall',
    '-Wextra',
    '-DNAPI_VERSION=8',
    '-DNODE_GYP_MODULE_NAME=vera_mpi',
    `-I${nodeInc}`,
    ...sources,
    '-o',
    MPI_ADDON,
    ...mpi.flags,
    '-lmpi',
    '-ldl',
  ];
  const r = spawnSync(mpi.cxx, argv, { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) {
    process.stderr.write((r.stdout ?? '') + (r.stderr ?? '') + (r.error ? `${r.error.message}\n` : ''));
    rmSync(MPI_ADDON, { force: true });
    log(`mpi: build failed (${mpi.how})`);
    return 'failed';
  }
  log(`mpi: built build/Release/vera_mpi.node (${mpi.how})`);
  return 'built';
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const r = buildMpi();
  process.exit(r === 'failed' || (r === 'skipped' && process.env.VERA_REQUIRE_MPI === '1') ? 1 : 0);
}
