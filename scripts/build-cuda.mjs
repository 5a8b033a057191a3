#!/usr/bin/env node
// Builds the CUDA backend's addon, build/Release/vera_cuda.node, from native/cuda/*.cu and the
// shared native/src/names.cc with nvcc (≥ 11.8): every source compiled in parallel into
// build/cuda/*.o, linked with cuBLASLt (CUDA's runtime linked statically, so only the driver and
// libcublasLt are needed at run time; an rpath points at the cuBLASLt found here). Where cuDNN 9 and
// the header-only cudnn-frontend are found, native/cuda/attention_cudnn.cc is built with
// -DVERA_CUDNN=1 and linked with libcudnn (cuDNN's fused attention); otherwise it compiles to a stub
// that always declines, and attention stays on our own kernels. Called by
// scripts/setup.mjs when nvcc is present; also runnable alone (`node scripts/build-cuda.mjs`).
// Plain Node ESM without dependencies. Exits 0 having built or with nothing to do, 1 on failure,
// and prints one line saying why when there is no nvcc (status 0: the CPU build never needs CUDA).
// Env: VERA_CUDA_ARCH (default sm_90: H100/H200; e.g. sm_80 for an A100), NVCC or CUDA_HOME,
//      VERA_CUBLAS_DIR (a directory with include/cublasLt.h and lib/ or lib64/libcublasLt.so*),
//      VERA_NODE_INCLUDE (a directory holding node_api.h), VERA_CUDNN_DIR, VERA_CUDNN_FRONTEND
//      (cuDNN's and cudnn-frontend's locations), VERA_CUDNN=0 (build without cuDNN), VERA_NCCL_LIB.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mtime, which } from './paths.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(ROOT, 'build', 'Release', 'vera_cuda.node');
const OBJ = join(ROOT, 'build', 'cuda');
const log = (m) => console.log(`[build-cuda] ${m}`);

/** nvcc: $NVCC, $CUDA_HOME/bin/nvcc, PATH, /usr/local/cuda/bin/nvcc. */
export function findNvcc() {
  const c = [
    process.env.NVCC,
    process.env.CUDA_HOME && join(process.env.CUDA_HOME, 'bin', 'nvcc'),
    which('nvcc'),
    '/usr/local/cuda/bin/nvcc',
  ];
  return c.find((p) => p && existsSync(p)) ?? null;
}

function nvccVersion(nvcc) {
  const r = spawnSync(nvcc, ['--version'], { encoding: 'utf8' });
  const m = /release (\d+)\.(\d+)/.exec(r.stdout ?? '');
  return m ? [Number(m[1]), Number(m[2])] : null;
}

/** { include, lib } holding cublasLt.h and libcublasLt.so*, or null. */
function findCublas(nvcc) {
  const roots = [];
  if (process.env.VERA_CUBLAS_DIR) roots.push(process.env.VERA_CUBLAS_DIR);
  roots.push(resolve(dirname(nvcc), '..'));
  if (process.env.CUDA_HOME) roots.push(process.env.CUDA_HOME);
  roots.push('/usr/local/cuda', '/usr', '/opt/cublas13/nvidia/cu13');
  // pip's nvidia-cublas wheels (PyTorch's environment): site-packages/nvidia/{cu13,cublas}
  for (const py of ['python3']) {
    const r = spawnSync(
      py,
      ['-c', 'import site,sys; print("\\n".join(site.getsitepackages()+[site.getusersitepackages()]))'],
      {
        encoding: 'utf8',
      },
    );
    for (const sp of (r.stdout ?? '').split('\n').filter(Boolean))
      roots.push(join(sp, 'nvidia', 'cu13'), join(sp, 'nvidia', 'cublas'));
  }
  for (const r of roots) {
    const include = [join(r, 'include'), join(r, 'targets', 'x86_64-linux', 'include')].find((d) =>
      existsSync(join(d, 'cublasLt.h')),
    );
    if (!include) continue;
    const lib = [
      join(r, 'lib64'),
      join(r, 'lib'),
      join(r, 'lib', 'x86_64-linux-gnu'),
      join(r, 'targets', 'x86_64-linux', 'lib'),
    ].find((d) => existsSync(d) && readdirSync(d).some((f) => f.startsWith('libcublasLt.so')));
    if (lib) return { include, lib };
  }
  return null;
}

/**
 * libnccl.so.2 for data-parallel training, or null: $VERA_NCCL_LIB, pip's nvidia-nccl wheels (PyTorch's
 * environment), the toolkit's and the system's library folders. Only its path is baked in: the addon
 * opens NCCL with dlopen when a process group asks for it (native/cuda/nccl.cu), so NCCL is not needed
 * to build or load the addon.
 */
function findNccl(nvcc) {
  if (process.env.VERA_NCCL_LIB) return process.env.VERA_NCCL_LIB;
  const dirs = [];
  const r = spawnSync('python3', ['-c', 'import site; print("\\n".join(site.getsitepackages()))'], {
    encoding: 'utf8',
  });
  for (const sp of (r.stdout ?? '').split('\n').filter(Boolean))
    dirs.push(join(sp, 'nvidia', 'nccl', 'lib'), join(sp, 'nvidia', 'cu13', 'lib'));
  const cuda = resolve(dirname(nvcc), '..');
  dirs.push(join(cuda, 'lib64'), join(cuda, 'lib'), '/usr/lib/x86_64-linux-gnu', '/usr/local/cuda/lib64');
  return dirs.map((d) => join(d, 'libnccl.so.2')).find((f) => existsSync(f)) ?? null;
}

/** pip's site-packages folders (PyTorch's environment holds the nvidia-* wheels there). */
function sitePackages() {
  const r = spawnSync('python3', ['-c', 'import site; print("\\n".join(site.getsitepackages()))'], {
    encoding: 'utf8',
  });
  return (r.stdout ?? '').split('\n').filter(Boolean);
}

/**
 * cuDNN ≥ 9 for the fused attention (native/cuda/attention_cudnn.cc): { include, lib, frontend, nvrtc } with
 * cudnn.h and libcudnn.so.9 ($VERA_CUDNN_DIR, pip's nvidia-cudnn-cu13/cu12 wheels, the toolkit, the
 * system), plus NVIDIA's header-only cudnn-frontend (cudnn_frontend.h: $VERA_CUDNN_FRONTEND, pip's
 * nvidia-cudnn-frontend, /usr/include, /usr/local/include) and the toolkit's nvrtc.h. { missing: why }
 * when one is absent: the addon is then built without it and attention runs its own kernels.
 */
function findCudnn(nvcc, extraIncludes) {
  if (process.env.VERA_CUDNN === '0') return { missing: 'VERA_CUDNN=0' };
  const roots = [
    process.env.VERA_CUDNN_DIR,
    resolve(dirname(nvcc), '..'),
    '/usr/local/cuda',
    '/usr',
    '/opt/cudnn13/nvidia/cudnn',
  ];
  for (const sp of sitePackages()) roots.push(join(sp, 'nvidia', 'cudnn'));
  let found = null;
  for (const r of roots.filter(Boolean)) {
    const include = [join(r, 'include'), join(r, 'include', 'x86_64-linux-gnu')].find((d) =>
      existsSync(join(d, 'cudnn_graph.h')),
    );
    const lib = [join(r, 'lib'), join(r, 'lib64'), join(r, 'lib', 'x86_64-linux-gnu')].find((d) =>
      existsSync(join(d, 'libcudnn.so.9')),
    );
    if (include && lib) {
      found = { include, lib };
      break;
    }
  }
  if (!found) return { missing: 'cuDNN 9 not found (cudnn_graph.h and libcudnn.so.9; set VERA_CUDNN_DIR)' };
  const fronts = [process.env.VERA_CUDNN_FRONTEND, ...sitePackages().map((sp) => join(sp, 'include'))];
  fronts.push('/usr/include', '/usr/local/include', '/opt/cudnn-frontend/include');
  const frontend = fronts.filter(Boolean).find((d) => existsSync(join(d, 'cudnn_frontend.h')));
  if (!frontend)
    return {
      missing:
        'cudnn-frontend not found (cudnn_frontend.h; pip install nvidia-cudnn-frontend or set VERA_CUDNN_FRONTEND)',
    };
  // The frontend includes nvrtc.h (its runtime-compiled engines; it opens libnvrtc itself when used).
  const nvrtcDirs = [join(resolve(dirname(nvcc), '..'), 'include'), ...extraIncludes];
  for (const sp of sitePackages())
    nvrtcDirs.push(join(sp, 'nvidia', 'cu13', 'include'), join(sp, 'nvidia', 'cuda_nvrtc', 'include'));
  const nvrtc = nvrtcDirs.find((d) => existsSync(join(d, 'nvrtc.h')));
  if (!nvrtc) return { missing: "nvrtc.h not found (the CUDA toolkit's NVRTC headers, which cudnn-frontend includes)" };
  return { ...found, frontend, nvrtc };
}

function findNodeInclude() {
  const c = [
    process.env.VERA_NODE_INCLUDE,
    join(dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ];
  return c.find((d) => d && existsSync(join(d, 'node_api.h'))) ?? null;
}

/**
 * The -L directories that give -lcublasLt: `lib` itself when it has the unversioned libcublasLt.so,
 * else build/cuda/lib with a link to the versioned file (pip's wheels ship only libcublasLt.so.N). The
 * addon then needs the soname (libcublasLt.so.N), found through the rpath.
 */
function cublasLinkDirs(lib) {
  if (existsSync(join(lib, 'libcublasLt.so'))) return [lib];
  const f = readdirSync(lib).find((x) => /^libcublasLt\.so\.\d+$/.test(x));
  if (!f) return [lib];
  const dir = join(OBJ, 'lib');
  mkdirSync(dir, { recursive: true });
  rmSync(join(dir, 'libcublasLt.so'), { force: true });
  symlinkSync(join(lib, f), join(dir, 'libcublasLt.so'));
  return [dir, lib];
}

/** A -L directory giving -lcudnn (pip ships only libcudnn.so.9): build/cuda/cudnn with a link. */
function cudnnLinkDir(lib) {
  if (existsSync(join(lib, 'libcudnn.so'))) return lib;
  const dir = join(OBJ, 'cudnn');
  mkdirSync(dir, { recursive: true });
  rmSync(join(dir, 'libcudnn.so'), { force: true });
  symlinkSync(join(lib, 'libcudnn.so.9'), join(dir, 'libcudnn.so'));
  return dir;
}

function runAll(jobs, parallel) {
  return new Promise((resolvePromise) => {
    let next = 0;
    let running = 0;
    let failed = null;
    const start = () => {
      while (running < parallel && next < jobs.length && !failed) {
        const [cmd, args, label] = jobs[next++];
        running++;
        const p = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (out += d));
        p.on('close', (code) => {
          running--;
          if (out.trim()) process.stderr.write(out);
          if (code !== 0 && !failed) failed = `${label} failed (exit ${code})`;
          if ((next >= jobs.length || failed) && running === 0) resolvePromise(failed);
          else start();
        });
      }
      if (next >= jobs.length && running === 0) resolvePromise(failed);
    };
    start();
  });
}

export async function buildCuda({ quiet = false } = {}) {
  const nvcc = findNvcc();
  if (!nvcc) {
    log('cuda: skipped (nvcc not found; install the CUDA toolkit ≥ 11.8 to build the GPU backend)');
    return 'skipped';
  }
  const ver = nvccVersion(nvcc);
  if (!ver || ver[0] < 11 || (ver[0] === 11 && ver[1] < 8)) {
    log(`cuda: skipped (${nvcc} is CUDA ${ver ? ver.join('.') : '?'}; 11.8 or newer is needed)`);
    return 'skipped';
  }
  const cublas = findCublas(nvcc);
  if (!cublas) {
    log('cuda: skipped (cuBLASLt not found: cublasLt.h and libcublasLt.so*; set VERA_CUBLAS_DIR)');
    return 'skipped';
  }
  const nodeInc = findNodeInclude();
  if (!nodeInc) {
    log('cuda: skipped (node_api.h not found; set VERA_NODE_INCLUDE)');
    return 'skipped';
  }
  const cudaDir = join(ROOT, 'native', 'cuda');
  const sources = [
    ...readdirSync(cudaDir)
      .filter((f) => f.endsWith('.cu') || f.endsWith('.cc'))
      .map((f) => join(cudaDir, f)),
    join(ROOT, 'native', 'src', 'names.cc'),
  ];
  const headers = [
    ...readdirSync(cudaDir)
      .filter((f) => f.endsWith('.cuh') || f.endsWith('.h'))
      .map((f) => join(cudaDir, f)),
    ...readdirSync(join(ROOT, 'native', 'src'))
      .filter((f) => f.endsWith('.h'))
      .map((f) => join(ROOT, 'native', 'src', f)),
  ];
  const newest = Math.max(...sources.map(mtime), ...headers.map(mtime), mtime(fileURLToPath(import.meta.url)));
  if (mtime(OUT) >= newest) {
    if (!quiet) log('cuda: up to date');
    return 'up-to-date';
  }
  const ncclLib = findNccl(nvcc);
  const cudnn = findCudnn(nvcc, [cublas.include]);
  const arch = process.env.VERA_CUDA_ARCH ?? 'sm_90';
  const cc = arch.replace(/^sm_/, '');
  const flags = [
    '-std=c++17',
    '-O3',
    `-gencode=arch=compute_${cc},code=[sm_${cc},compute_${cc}]`,
    '-DVERA_TAG="cuda"',
    '-DNAPI_VERSION=8',
    `-DVERA_NCCL_DEFAULT=${JSON.stringify(ncclLib ?? '')}`,
    '-Xcompiler=-fPIC,-Wall',
    '-I',
    join(ROOT, 'native', 'src'),
    '-I',
    nodeInc,
    '-I',
    cublas.include,
    ...(cudnn.missing
      ? []
      : ['-DVERA_CUDNN=1', '-isystem', cudnn.include, '-isystem', cudnn.frontend, '-isystem', cudnn.nvrtc]),
  ];
  mkdirSync(OBJ, { recursive: true });
  mkdirSync(dirname(OUT), { recursive: true });
  const objects = sources.map((s) => join(OBJ, `${basename(s)}.o`));
  const headerTime = Math.max(...headers.map(mtime));
  const jobs = sources
    .map((s, i) => [s, objects[i]])
    .filter(([s, o]) => mtime(o) < Math.max(mtime(s), headerTime, mtime(fileURLToPath(import.meta.url))))
    .map(([s, o]) => [nvcc, [...flags, '-x', s.endsWith('.cu') ? 'cu' : 'c++', '-c', s, '-o', o], basename(s)]);
  log(
    `cuda: nvcc ${ver.join('.')} for ${arch}: compiling ${jobs.length} of ${sources.length} files (cuBLASLt from ${cublas.lib}; NCCL ${ncclLib ? `from ${ncclLib}` : 'not found: data-parallel training on cuda will look for libnccl.so.2 at run time'}; cuDNN attention ${cudnn.missing ? `off: ${cudnn.missing}` : `from ${cudnn.lib}`})`,
  );
  const failed = await runAll(jobs, Math.max(1, Math.min(cpus().length, 16)));
  if (failed) {
    rmSync(OUT, { force: true });
    log(`cuda: build failed: ${failed}`);
    return 'failed';
  }
  const link = spawnSync(
    nvcc,
    [
      '-shared',
      ...objects,
      '-o',
      OUT,
      ...cublasLinkDirs(cublas.lib).map((d) => `-L${d}`),
      '-lcublasLt',
      ...(cudnn.missing ? [] : [`-L${cudnnLinkDir(cudnn.lib)}`, '-lcudnn', `-Xlinker=-rpath=${cudnn.lib}`]),
      '-ldl',
      `-Xlinker=-rpath=${cublas.lib}`,
    ],
    { cwd: ROOT, encoding: 'utf8' },
  );
  if (link.status !== 0) {
    process.stderr.write((link.stdout ?? '') + (link.stderr ?? ''));
    rmSync(OUT, { force: true });
    log('cuda: link failed');
    return 'failed';
  }
  writeFileSync(
    join(OBJ, 'built-with.txt'),
    `${nvcc} ${ver.join('.')} ${arch} cublasLt ${cublas.lib} cudnn ${cudnn.missing ? 'off' : cudnn.lib}\n`,
  );
  log(`cuda: built ${OUT.slice(ROOT.length + 1)}`);
  return 'built';
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const r = await buildCuda();
  process.exit(r === 'failed' ? 1 : 0);
}
