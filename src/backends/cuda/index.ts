// The cuda backend: the Backend contract on the vera_cuda N-API addon (CUDA C++, cuBLASLt; built by
// scripts/build-cuda.mjs when nvcc is present), through the binding both addons share. Kernels are
// queued on one CUDA stream and return at once; download() waits for them, downloadAsync() waits on
// a worker thread (the event loop keeps running), and a data-dependent error (an id out of range) that
// a kernel recorded is thrown by the next download, downloadAsync or sync. Fused kernels the addon
// does not list (VERA_CUDA_COMPOSITE hides some) are absent, so fused() runs their composites.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { type Addon, AddonBackend, type Handle, packageRoot } from '../addon-binding.js';
import {
  type DeviceCommunicator,
  FUSED_KERNELS,
  type FusedKernelName,
  type MemoryStats,
  type View,
} from '../backend.js';
import { activationsFromEnv, withBf16Views } from '../bf16-views.js';
import { type HostArray, hostArray } from '../dtype.js';

/** vera_cuda's exports beyond the shared kernels. */
export interface CudaAddon extends Addon {
  sync(): void;
  downloadAsync(h: Handle | null, dst: HostArray): Promise<void>;
  deviceInfo(): Record<string, string>;
  fusedKernels(): string[];
  /** Kernels that take bf16 views themselves (absent in an addon older than bf16 activations). */
  bf16Kernels?(): string[];
  resetPeakMemory(): void;
  profileReport(): string;
  /** JSON of attention_cudnn.cc's use of cuDNN (absent in an addon older than it). */
  cudnnAttention?(): string;
  ncclVersion(): { version: number; library: string };
  ncclUniqueId(): Uint8Array;
  ncclInit(id: Uint8Array, size: number, rank: number): void;
  ncclAllReduce(h: Handle, op: number): void;
  ncclBroadcast(h: Handle, root: number): void;
  ncclAllReduceHost(data: Float32Array | Float64Array, op: number): void;
  ncclBroadcastHost(data: Float32Array | Float64Array | Uint8Array, root: number): void;
  ncclAllGatherHost(send: Uint8Array, recv: Uint8Array): void;
  ncclFinalize(abort: boolean): void;
}

const REDUCE_OPS = { sum: 0, max: 1, min: 2 } as const;

/** CudaBackend.cudnnAttention's answer. */
export interface CudnnAttentionStats {
  built: boolean;
  version: number;
  forward: number;
  backward: number;
  declined: number;
  reason: string;
}

/** Totals of one label of the kernel profile (VERA_CUDA_PROFILE=1). */
export interface ProfileEntry {
  calls: number;
  /** Device time between the events around the calls. */
  gpuMs: number;
  /** Host time inside the calls (checks, descriptor parsing, launches). */
  hostMs: number;
}

/** Where the built addon is expected (VERA_CUDA_ADDON overrides it). */
export function cudaAddonPath(): string {
  return process.env['VERA_CUDA_ADDON'] || join(packageRoot(), 'build', 'Release', 'vera_cuda.node');
}

let cached: CudaAddon | null = null;

/** Loads the addon once and initialises the device; throws an Error saying why CUDA is unavailable. */
export function loadCudaAddon(): CudaAddon {
  if (cached) return cached;
  const path = cudaAddonPath();
  if (!existsSync(path)) {
    throw new Error(
      `[cuda] The cuda backend is unavailable: the addon is not built (${path} does not exist; it is built by \`npm run build\` where nvcc ≥ 11.8 and cuBLASLt are installed)`,
    );
  }
  let addon: CudaAddon;
  try {
    addon = createRequire(import.meta.url)(path) as CudaAddon;
  } catch (e) {
    throw new Error(`[cuda] The cuda backend is unavailable: loading ${path} failed: ${(e as Error).message}`, {
      cause: e,
    });
  }
  try {
    addon.deviceInfo();
  } catch (e) {
    throw new Error(`[cuda] The cuda backend is unavailable: ${(e as Error).message}`, { cause: e });
  }
  cached = addon;
  return addon;
}

export class CudaBackend extends AddonBackend {
  readonly #c: CudaAddon;
  /** bf16 tensor-core GEMMs against HBM: H100 ≈ 790 TFLOP/s ÷ 3.35 TB/s, A100 ≈ 312 ÷ 2.0. */
  readonly gemmFlopsPerByte = 150;
  /**
   * bf16 activations between bf16 GEMMs, as torch.autocast keeps them (backend.ts);
   * VERA_ACTIVATIONS=f32 keeps them f32 (to compare the two).
   */
  readonly activationDType?: 'bf16';
  readonly bf16Kernels: ReadonlySet<string>;
  readonly #info: Readonly<Record<string, string>>;

  constructor(addon: CudaAddon = loadCudaAddon()) {
    super(addon, 'cuda', 'cuda');
    this.#c = addon;
    this.#info = Object.freeze({ ...addon.deviceInfo() });
    const have = new Set(addon.fusedKernels());
    for (const k of FUSED_KERNELS as readonly FusedKernelName[]) {
      if (!have.has(k)) Object.defineProperty(this, k, { value: undefined, enumerable: false });
    }
    const acts = activationsFromEnv('cuda', 'bf16');
    if (acts) this.activationDType = acts;
    this.bf16Kernels = new Set(addon.bf16Kernels?.() ?? []);
    withBf16Views(this);
  }

  info(): Readonly<Record<string, string>> {
    return this.#info;
  }

  override memory(): MemoryStats {
    const m = super.memory();
    return { ...m, peak: this.#c.descriptor[2]! };
  }

  resetPeakMemory(): void {
    this.#c.resetPeakMemory();
  }

  /**
   * With VERA_CUDA_PROFILE=1 (read when the addon loads): per kernel label (binary.mul, matmul with its
   * shape, …) the calls, device and host time since the last report, which this one ends; else null.
   */
  profileReport(): Record<string, ProfileEntry> | null {
    return JSON.parse(this.#c.profileReport()) as Record<string, ProfileEntry> | null;
  }

  /**
   * cuDNN's fused attention in this process: whether the addon was built with it, cuDNN's version
   * (major·10000 + minor·100 + patch; 0 when not loaded), the attention calls it took and those it
   * declined (left to our kernels), with the last decline's reason.
   */
  cudnnAttention(): CudnnAttentionStats {
    const raw = this.#c.cudnnAttention?.();
    if (!raw) return { built: false, version: 0, forward: 0, backward: 0, declined: 0, reason: '' };
    return { reason: '', ...(JSON.parse(raw) as Omit<CudnnAttentionStats, 'reason'>) };
  }

  /** NCCL between the processes of a data-parallel run (native/cuda/nccl.cu opens it on first use). */
  readonly communicator: DeviceCommunicator = {
    library: () => {
      const { version: v, library } = this.#c.ncclVersion();
      // NCCL ≥ 2.9 encodes 2.28.9 as 22809 (major·10000 + minor·100 + patch).
      return `NCCL ${Math.floor(v / 10000)}.${Math.floor(v / 100) % 100}.${v % 100} (${library})`;
    },
    uniqueId: () => this.#c.ncclUniqueId(),
    join: (id, size, rank) => this.#c.ncclInit(id, size, rank),
    allReduce: (v, op) => this.#c.ncclAllReduce(this.packed(v), REDUCE_OPS[op]),
    broadcast: (v, root) => this.#c.ncclBroadcast(this.packed(v), root),
    allReduceHost: (data, op) => this.#c.ncclAllReduceHost(data, REDUCE_OPS[op]),
    broadcastHost: (data, root) => this.#c.ncclBroadcastHost(data, root),
    allGatherHost: (send, recv) => this.#c.ncclAllGatherHost(send, recv),
    leave: (abort) => this.#c.ncclFinalize(abort),
  };

  async downloadAsync(v: View): Promise<HostArray> {
    let n = 1;
    for (const s of v.shape) n *= s;
    if (!Number.isSafeInteger(n) || n < 0)
      throw new Error(`[cuda downloadAsync] Invalid view shape (${v.shape.join(', ')})`);
    const out = hostArray(v.dtype, n);
    await this.#c.downloadAsync(this.packed(v), out);
    return out;
  }
}

/** The cuda backend, or an Error explaining why it is unavailable (not built, no device, no driver). */
export function loadCudaBackend(): CudaBackend {
  return new CudaBackend(loadCudaAddon());
}
