// The contract every backend implements: buffers (alloc/free/upload/download), a closed list of
// primitive kernels every backend must implement, and fused kernels it may implement. The tensor
// front end (src/tensor, src/autograd, src/ops) is written against this interface only; model code
// never sees a backend. `js` (pure TypeScript) is the living definition of each kernel, `native`
// (N-API + oneDNN) must agree with it, and a CUDA backend will implement the same list on device
// pointers. Kernels never read results back to the host: only download() does.
//
// What a backend must and may implement:
// - MUST: the memory methods (alloc, free, upload, download, memory, emptyCache, sync) and the
//   primitives: copy, fill, unary, scalar, binary, unaryGrad, where, reduce, argmax, topk, matmul,
//   gather, scatterAdd, embedding, embeddingBackward. embedding stays a primitive although gather
//   could express it: gather would need an [N, C] index tensor (larger than the output), it cannot
//   read a bf16 table into an f32 output, and the id range check belongs to one named kernel.
// - MAY: the fused kernels listed in FUSED_KERNELS below (softmax, norms, cross-entropy, RoPE,
//   dropout, AdamW, attention, each with its backward where it has one). Ops never call them on the
//   backend directly: they call fused(backend).<kernel> (src/ops/kernels.ts), which is the backend's
//   own method when it has one, else the composite of the same signature in src/ops/composite/, built
//   from the primitives above. A new backend starts with the primitives and adds fused kernels one at
//   a time; test/backends/conformance checks each against the js reference.
// - MAY: readFile (stream checkpoint bytes straight into device memory), info (facts for benchmark
//   reports) and getThreads/setThreads (CPU backends with a worker pool).
//
// Conventions, shared by every kernel:
// - A View is a strided window on a buffer; offsets and strides count elements, stride 0 broadcasts.
// - "contiguous" below means row-major dense from `offset` (the front end guarantees it).
// - Output views are contiguous unless the kernel says otherwise, and never alias an input, except
//   that unary/scalar/binary/where may be given an out identical to a contiguous input of the same
//   shape (same buffer and offset): elementwise in-place updates such as grad += g.
// - Float kernels compute in f32 (f64 on the js backend when the views are f64). Integer inputs
//   (ids, targets) are i32. Masks are 'bool' (one byte, 0 or 1).
// - bf16 activations. Any float view of any kernel but adamw may also be 'bf16' (the front end makes
//   activations bf16 on a backend that declares activationDType 'bf16'; statistics such as lse, rstd
//   and mean, losses, and norm weights stay f32). The meaning is one for every backend: bf16 inputs are
//   widened exactly, the kernel computes as it does for f32 views, and each stored bf16 element is
//   rounded to nearest even (an output the kernel accumulates into is read widened first). A backend
//   runs the kernels it lists in bf16Kernels on bf16 views itself; every other kernel reaches it through
//   withBf16Views (src/backends/bf16-views.ts), which widens into f32 scratch, runs the f32 kernel and
//   rounds back — correct everywhere, and the definition a backend's own bf16 kernels are checked
//   against. matmul's bf16 operands are its own rule (below), not this one.
//
// Reads. download() (and downloadAsync()) is the only way data comes back to the host; on a device it
// waits for the kernels queued before it (a sync). Hot paths (a model forward, a decoding step, a
// training step) make none, or a stated few: a decoding step reads the chosen ids, not the logits.
// Code that may wait on the host, such as a server, reads with downloadAsync (Tensor.data()) so the
// event loop keeps running while the device works.
//
// Data-dependent errors. Kernels that index by data (embedding/embeddingBackward ids, crossEntropy
// targets, gather/scatterAdd indices) report a value out of range as an error naming the op, the value
// and its position, and never read or write out of bounds. The CPU backends throw from the kernel call
// itself, before writing anything. A device backend may instead clamp, remember the first bad value and
// throw it at the next download, downloadAsync or sync: such an error may surface late, after later
// kernels were queued, and then the outputs since are garbage. So the host validates ids where they are
// born (tokenizer output, collate, generate's prompts) with errors naming the value, and nothing relies
// on a kernel to reject bad data early.

import type { DType, HostArray } from './dtype.js';

/** An opaque handle to a block of memory owned by one backend. */
export interface BackendBuffer {
  readonly byteLength: number;
}

export interface View {
  readonly buf: BackendBuffer;
  readonly dtype: DType;
  readonly offset: number;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
}

export type UnaryOp =
  | 'neg'
  | 'exp'
  | 'log'
  | 'sqrt'
  | 'rsqrt'
  | 'abs'
  | 'sign'
  | 'sin'
  | 'cos'
  | 'tanh'
  | 'sigmoid'
  | 'relu'
  | 'gelu' // exact: x·Φ(x) with erf
  | 'gelu_tanh' // 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
  | 'silu'
  | 'square'
  | 'recip';

/** Unary ops that take one scalar parameter `s`. Comparisons produce 'bool'. */
export type ScalarOp =
  | 'add_s' // x + s
  | 'mul_s' // x · s
  | 'pow_s' // x ** s
  | 'rsub_s' // s − x
  | 'max_s' // max(x, s)
  | 'min_s' // min(x, s)
  | 'eq_s'
  | 'ne_s'
  | 'lt_s'
  | 'le_s'
  | 'gt_s'
  | 'ge_s';

/** Binary ops with broadcasting (the front end passes broadcast strides). Comparisons produce 'bool'. */
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'max' | 'min' | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';

/** Unary ops that have a fused derivative kernel: dx = dy · f'(x). */
export type UnaryGradOp = 'gelu' | 'gelu_tanh' | 'silu' | 'tanh' | 'sigmoid' | 'relu';

export type ReduceOp = 'sum' | 'max' | 'min';

export interface AttentionOpts {
  /** Multiplier of q·kᵀ, usually 1/√D. */
  scale: number;
  /** Query i may attend key j only when j ≤ i + (Tk − Tq) (queries are the last Tq positions). */
  causal: boolean;
  /** When > 0, query i may attend key j only when (i + Tk − Tq) − j < window (Mistral's sliding window). */
  window: number;
  /** Optional 'bool' [B, Tk] contiguous, 1 = attend, 0 = padding (HF's attention_mask). */
  keyMask: View | null;
  /**
   * Dropout of the attention probabilities (HF's attn_dropout after the softmax); absent or null = none.
   * Probability (b, h, i, j) (batch, query head, query row, key column) is kept when
   *   u(seed, offset + ((b·Hq + h)·Tq + i)·Tk + j) ≥ p
   * with u the Philox uniform of src/backends/philox.ts (the dropout kernel's), i.e. the mask of the
   * dropout kernel over a contiguous [B, Hq, Tq, Tk] tensor; kept probabilities are scaled by 1/(1 − p),
   * so out = dropout(P)·V. lse stays that of the undropped P, and the backward regenerates the mask from
   * the same (seed, offset): no mask is stored. 0 ≤ p < 1.
   */
  dropout?: AttentionDropout | null;
  /**
   * The caller allows bf16 rounding of q, k, v and of the probabilities and their gradients before the
   * products they enter, accumulating in f32 (what torch.autocast's SDPA computes; models set it when
   * their weights are bf16). A backend with a faster bf16 path (CUDA's tensor cores) may take it; one
   * without computes in f32 as when it is absent.
   */
  lowPrecision?: boolean;
}

export interface AttentionDropout {
  p: number;
  seed: number;
  offset: number;
}

export interface CrossEntropyOpts {
  ignoreIndex: number;
  labelSmoothing: number;
}

export interface AdamWParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count after this update, for bias correction. */
  step: number;
}

/**
 * A device backend's collectives between processes (NCCL on cuda): one communicator per process,
 * joined by every rank with the same id (made by rank 0, handed to the others out of band). Device
 * collectives are queued on the backend's stream like kernels; host ones wait for their result.
 */
export interface DeviceCommunicator {
  /** The library and its version, e.g. "NCCL 2.28.9 (/…/libnccl.so.2)". Throws where it is missing. */
  library(): string;
  /** A fresh id for a new communicator (rank 0 calls this). */
  uniqueId(): Uint8Array;
  join(id: Uint8Array, size: number, rank: number): void;
  /** In place over a contiguous view of this backend. */
  allReduce(v: View, op: 'sum' | 'max' | 'min'): void;
  broadcast(v: View, root: number): void;
  /** In place over a host array, through the device. */
  allReduceHost(data: Float32Array | Float64Array, op: 'sum' | 'max' | 'min'): void;
  broadcastHost(data: Float32Array | Float64Array | Uint8Array, root: number): void;
  /** recv (send.length × size bytes) gets every rank's send bytes in rank order. */
  allGatherHost(send: Uint8Array, recv: Uint8Array): void;
  /** Leaves the communicator; `abort` skips waiting for the other ranks (a failing rank). */
  leave(abort: boolean): void;
}

export interface MemoryStats {
  /** Bytes held by live buffers. */
  allocated: number;
  /** Bytes held by the backend's free-list cache, ready for reuse. */
  cached: number;
  /**
   * Optional (cuda): the most bytes in use on the device at once (buffers, scratch, GEMM workspaces)
   * since the backend started or resetPeakMemory() — what torch.cuda.max_memory_allocated reports.
   */
  peak?: number;
}

/** The kernels every backend must implement (besides the memory methods). */
export const PRIMITIVE_KERNELS = [
  'copy',
  'fill',
  'unary',
  'scalar',
  'binary',
  'unaryGrad',
  'where',
  'reduce',
  'argmax',
  'topk',
  'matmul',
  'embedding',
  'embeddingBackward',
  'gather',
  'scatterAdd',
] as const;

export type PrimitiveKernelName = (typeof PRIMITIVE_KERNELS)[number];

/**
 * The fused kernels a backend may leave out (ops reach them through fused(backend) in
 * src/ops/kernels.ts, which falls back to the composites in src/ops/composite/).
 */
export const FUSED_KERNELS = [
  'softmax',
  'softmaxBackward',
  'layerNorm',
  'layerNormBackward',
  'rmsNorm',
  'rmsNormBackward',
  'crossEntropy',
  'crossEntropyBackward',
  'rope',
  'dropout',
  'adamw',
  'attention',
  'attentionBackward',
  'gatedActivation',
  'gatedActivationBackward',
  'scaleFold',
  'scaleGrads',
  'scaleAdd',
  'scaleBackward',
  'unaryWithGrad',
] as const;

export type FusedKernelName = (typeof FUSED_KERNELS)[number];

/** Every fused kernel, present: what fused(backend) returns. */
export type FusedKernels = Required<Pick<Backend, FusedKernelName>>;

export interface Backend {
  readonly name: string;
  /** Where its buffers live ('cpu', 'cuda', …): informational, never branched on by the engine. */
  readonly device: string;
  /** dtypes this backend can allocate and compute with (js adds f64). */
  readonly dtypes: readonly DType[];

  // ---- memory -------------------------------------------------------------------------------
  /** Uninitialised storage for `numel` elements of `dtype`. */
  alloc(dtype: DType, numel: number): BackendBuffer;
  /** Returns the memory to the backend; the handle must not be used again. Idempotent. */
  free(buf: BackendBuffer): void;
  /** Copies a host array (whose length equals the buffer's element count at `offset`) into the buffer. */
  upload(buf: BackendBuffer, dtype: DType, offset: number, data: HostArray): void;
  /**
   * Optional: fills `bytes` bytes of the buffer from byte `byteOffset` straight from an open file at
   * `position`, as stored (no conversion; a backend with device memory can read without a host copy).
   * Throws on a read error or a file that ends early.
   */
  readFile?(buf: BackendBuffer, byteOffset: number, fd: number, position: number, bytes: number): void;
  /** Copies a strided view into a new contiguous host array of the view's dtype. */
  download(v: View): HostArray;
  /**
   * Optional: download() as a Promise, for a device that can copy to host memory without blocking the
   * caller (an event after the queued kernels, then a copy into pinned memory). The read is ordered at
   * the call: the view's buffer may be freed as soon as this returns. Without it, Tensor.data() resolves
   * download(v), called at once.
   */
  downloadAsync?(v: View): Promise<HostArray>;
  memory(): MemoryStats;
  /** Releases cached free memory back to the system. */
  emptyCache(): void;
  /** Optional (backends reporting MemoryStats.peak): restarts the peak from the bytes in use now. */
  resetPeakMemory?(): void;
  /** Waits for queued work (a no-op on synchronous CPU backends). */
  sync(): void;
  /**
   * Optional: about how many GEMM FLOPs this backend does in the time an elementwise kernel moves one
   * byte (peak GEMM FLOP/s ÷ memory bandwidth). Ops that can trade memory passes for GEMM work
   * (ops.scaledLinear) weigh the two with it; absent, they keep the memory-bound formulation.
   */
  readonly gemmFlopsPerByte?: number;
  /** Optional facts about the implementation for benchmark reports (libraries, ISA, chosen GEMM kernels). */
  info?(): Readonly<Record<string, string>>;
  /** Optional (CPU backends with a worker pool): number of worker threads used by kernels. */
  getThreads?(): number;
  setThreads?(n: number): void;
  /**
   * Optional (CPU backends with a worker pool): raises the nice value of the calling thread and of the
   * kernel threads to `nice` (0..19), so other threads of the process (a server's HTTP thread) run first
   * on a busy machine; `idle` also puts them under SCHED_IDLE (Linux), where any thread of normal
   * policy that wakes up preempts them at once. Returns false where the system does not allow it.
   */
  lowerPriority?(nice: number, idle?: boolean): boolean;
  /**
   * Optional: 'bf16' makes activations bf16 between bf16 GEMMs, as torch.autocast keeps them on a GPU —
   * half the memory traffic of every elementwise pass and of the activations saved for the backward.
   * The front end then gives a bf16 product (a bf16 weight or activation operand) and a bf16 embedding
   * table's rows a bf16 result, and the ops after them keep bf16. Absent, they are f32 (the CPU
   * backends, whose GEMMs round an f32 operand to bf16 while packing it at no extra pass).
   */
  readonly activationDType?: 'bf16';
  /**
   * Optional: the kernels this backend runs on bf16 views (see "bf16 activations" above) itself; the
   * others get withBf16Views' widening fallback.
   */
  readonly bf16Kernels?: ReadonlySet<string>;
  /** Optional (device backends): collectives between processes for data-parallel training. */
  readonly communicator?: DeviceCommunicator;

  // ---- data movement ------------------------------------------------------------------------
  /** out[i] = cast(a[i]) elementwise over out.shape == a.shape; both views may be strided. */
  copy(out: View, a: View): void;
  /** Sets every element of a contiguous view to `value`. */
  fill(out: View, value: number): void;

  // ---- elementwise --------------------------------------------------------------------------
  unary(op: UnaryOp, out: View, a: View): void;
  scalar(op: ScalarOp, out: View, a: View, s: number): void;
  binary(op: BinaryOp, out: View, a: View, b: View): void;
  /** dx = dy · f'(x); x and dy have out's shape (may be strided). */
  unaryGrad(op: UnaryGradOp, dx: View, x: View, dy: View): void;
  /**
   * An activation and its derivative in one pass: out = f(x) and grad = f'(x) (unary's and unaryGrad's
   * values with dy = 1), contiguous views of one shape. An activation whose derivative costs about what
   * its value does (the GELUs) saves f'(x) in the forward, so its backward is one product.
   */
  unaryWithGrad?(op: UnaryGradOp, out: View, grad: View, x: View): void;
  /** out = cond ? a : b, all three broadcast to out.shape; cond is 'bool'. */
  where(out: View, cond: View, a: View, b: View): void;

  // ---- reductions ---------------------------------------------------------------------------
  /** Reduces `a` over `axes` into out, whose shape is a.shape with those axes set to 1. */
  reduce(op: ReduceOp, out: View, a: View, axes: readonly number[]): void;
  /** out[r] = index of the first maximum of row r of a contiguous [R, N] view; out is i32 [R]. */
  argmax(out: View, a: View): void;
  /** The k largest of each row of a contiguous [R, N] view, sorted descending (ties: lower index first). */
  topk(values: View, indices: View, a: View, k: number): void;

  // ---- linear algebra -----------------------------------------------------------------------
  /**
   * Batched GEMM on 3-D views: out[b] (+)= a[b] · b[b] with a [Bt, M, K], b [Bt, K, N], out [Bt, M, N]
   * contiguous. For a and b one of the last two strides is 1 (row- or column-major); the batch stride
   * is free (0 broadcasts). accumulate = true adds into out instead of overwriting.
   *
   * Either operand may be 'bf16' (frozen weights kept in half the memory); then the GEMM computes in
   * bf16, as torch.autocast runs matmuls: the other operand, when f32 (or f64 on js), is rounded to bf16
   * (round to nearest even), the products of bf16 values are exact in f32 and accumulate in f32 (or
   * wider), and out is f32 (f64 on js with an f64 operand) — the result equals the f32 GEMM of the
   * bf16-rounded operands up to summation order (and f32 denormals, which bf16 instructions may flush).
   * Any operand layout above is accepted (a linear reads its [out, in] weight transposed). out may be
   * bf16 (activationDType): the f32 accumulation is rounded once per element, and with accumulate the
   * bf16 out is read widened and added in f32 before that rounding (cuBLASLt's beta = 1 on a bf16 C).
   */
  matmul(out: View, a: View, b: View, accumulate: boolean): void;

  // ---- fused neural-network kernels (forward/backward pairs), optional: see FUSED_KERNELS ----
  /** Softmax (or log-softmax) over the last axis of a contiguous [R, N] view. */
  softmax?(out: View, a: View, log: boolean): void;
  /** dx from y (the forward output) and dy; log selects log-softmax's derivative. */
  softmaxBackward?(dx: View, y: View, dy: View, log: boolean): void;

  /** LayerNorm over the last axis of contiguous x [R, C]; saves mean [R] and rstd [R]. w, b: [C] or null. */
  layerNorm?(out: View, mean: View, rstd: View, x: View, w: View | null, b: View | null, eps: number): void;
  /** dx (overwrite); dw and db accumulate (+=) when not null. */
  layerNormBackward?(
    dx: View | null,
    dw: View | null,
    db: View | null,
    dy: View,
    x: View,
    w: View | null,
    mean: View,
    rstd: View,
  ): void;
  /** RMSNorm (Llama): out = x · rsqrt(mean(x²) + eps) · w; saves rstd [R]. w may be null. */
  rmsNorm?(out: View, rstd: View, x: View, w: View | null, eps: number): void;
  rmsNormBackward?(dx: View | null, dw: View | null, dy: View, x: View, w: View | null, rstd: View): void;
  // (embedding, embeddingBackward, gather and scatterAdd are primitives: required, see PRIMITIVE_KERNELS)

  /**
   * out[n] = weight[ids[n]] for ids i32 [N] (contiguous), weight [V, C] contiguous, out [N, C].
   * weight may be 'bf16' (a frozen table kept in half the memory) while out is f32 (f64 on js): each
   * selected element is widened exactly (its bits shifted left by 16), as matmul widens a bf16 `b`. An id
   * outside [0, V) is an error naming the id and its position; on a device backend it may surface late
   * (see "Data-dependent errors" above).
   */
  embedding(out: View, weight: View, ids: View): void;
  /** dweight[ids[n]] += dy[n] (scatter-add), dy [N, C] contiguous; dweight has dy's float dtype (never bf16). */
  embeddingBackward(dweight: View, dy: View, ids: View): void;

  /** torch.gather on contiguous views: out[..i..] = a[..index[..i..] along axis..]; index i32, out.shape = index.shape. */
  gather(out: View, a: View, index: View, axis: number): void;
  /** The adjoint of gather: out[..index[..i..] along axis..] += src[..i..]. */
  scatterAdd(out: View, index: View, src: View, axis: number): void;

  /**
   * Scaled dot-product attention. q [B, Tq, Hq, D], k and v [B, Tk, Hkv, D] with the last stride 1
   * (other strides free, so a fused qkv projection is read in place); Hq is a multiple of Hkv
   * (grouped-query attention: query head h reads kv head ⌊h·Hkv/Hq⌋). out [B, Tq, Hq, D] contiguous;
   * lse [B, Hq, Tq] contiguous receives each row's log-sum-exp of the scaled, masked scores (−∞ for a
   * row with no visible key, whose output is 0). The T×T probabilities are never stored. With
   * opts.dropout the probabilities are dropped after the softmax (see AttentionOpts.dropout).
   */
  attention?(out: View, lse: View, q: View, k: View, v: View, opts: AttentionOpts): void;
  /** Gradients of attention (overwrite dq, dk, dv, which are contiguous in the forward input shapes). */
  attentionBackward?(
    dq: View,
    dk: View,
    dv: View,
    dout: View,
    q: View,
    k: View,
    v: View,
    out: View,
    lse: View,
    opts: AttentionOpts,
  ): void;

  /**
   * Per-row cross-entropy of contiguous logits [N, V] against i32 targets [N]: loss [N] (0 for an
   * ignored row), and lse [N] saved for the backward. With label smoothing ε the target distribution
   * is (1 − ε)·onehot + ε/V, as torch defines it.
   */
  crossEntropy?(loss: View, lse: View, logits: View, targets: View, opts: CrossEntropyOpts): void;
  /** dlogits = dloss[n] · (softmax(logits[n]) − target distribution), 0 for ignored rows. */
  crossEntropyBackward?(
    dlogits: View,
    dloss: View,
    logits: View,
    lse: View,
    targets: View,
    opts: CrossEntropyOpts,
  ): void;

  /**
   * Rotary embedding with HF's rotate_half layout over the last axis D of x [B, T, H, D] (last stride 1,
   * others free): with x1 = x[..., :D/2], x2 = x[..., D/2:] and tables cos, sin [B or 1, T, D/2]
   * contiguous (HF's cos/sin tables hold each angle twice; these hold it once),
   *   out[..., :D/2] = x1·cos − x2·sin,   out[..., D/2:] = x2·cos + x1·sin,
   * into out [B, T, H, D] contiguous. The backward is this kernel with `inverse` (sin negated).
   */
  rope?(out: View, x: View, cos: View, sin: View, inverse: boolean): void;

  /**
   * Inverted dropout of a contiguous view: keep element i when u(seed, offset + i) ≥ p, scaling kept
   * values by 1/(1 − p). u is the counter-based Philox4x32-10 uniform defined in src/backends/philox.ts,
   * so every backend draws the same mask, and the backward is this kernel applied to dy.
   */
  dropout?(out: View, a: View, p: number, seed: number, offset: number): void;

  /** One AdamW step in place on contiguous param, m, v (torch.optim.AdamW's arithmetic). */
  adamw?(param: View, grad: View, m: View, v: View, hp: AdamWParams): void;

  /**
   * A gated MLP's activation (SwiGLU, GeGLU): out = f(gate) · up over contiguous views of one shape,
   * f(gate) formed as the unary kernel forms it (an f32 value) and the product as binary 'mul' does, so
   * out is binary('mul', unary(f, gate), up) without the intermediate tensor.
   */
  gatedActivation?(out: View, gate: View, up: View, op: UnaryGradOp): void;
  /**
   * Its gradients from dy (all contiguous, one shape), each overwritten when not null:
   * dgate = unaryGrad(f, gate, dy · up), dup = dy · f(gate), with every intermediate an f32 value.
   */
  gatedActivationBackward?(dgate: View | null, dup: View | null, gate: View, up: View, dy: View, op: UnaryGradOp): void;

  /**
   * out[o, k] = (w[o, k] · rowScale[o]) · colScale[k] for w [O, K] and out [O, K] contiguous (out may
   * have another float dtype: bf16 rounds once), rowScale [O] and colScale [K] contiguous f32, either
   * null (a scale of ones). Folds per-feature scalings into a weight (VeRA's λ_b and λ_d into B).
   */
  scaleFold?(out: View, w: View, rowScale: View | null, colScale: View | null): void;
  /**
   * The scalings' gradients through scaleFold, from g = dL/d(out) [O, K] (contiguous, f32 or bf16):
   *   rowGrad[o] = Σ_k g[o, k] · w[o, k] · colScale[k],   colGrad[k] = Σ_o g[o, k] · w[o, k] · rowScale[o]
   * into f32 [O] and [K] (overwritten; null: not computed), each term formed as (g · w) · scale in f32
   * and summed in f32 or wider (the order is the backend's: compare with a tolerance).
   */
  scaleGrads?(
    rowGrad: View | null,
    colGrad: View | null,
    g: View,
    w: View,
    rowScale: View | null,
    colScale: View | null,
  ): void;
  /**
   * out[i, k] = a[i, k] + v[i, k] · s[k] for contiguous [R, N] views out, a, v (f32 or bf16 each) and a
   * contiguous f32 s [N]: v · s an f32 product, added as binary 'add' adds (a scaled adapter output
   * added to the base's in one pass).
   */
  scaleAdd?(out: View, a: View, v: View, s: View): void;
  /**
   * The gradients of v ⊙ s from dy, for contiguous [R, N] views dy, v (f32 or bf16) and a contiguous f32
   * s [N]: dv[i, k] = dy[i, k] · s[k] (an f32 product, rounded to dv's dtype: a bf16 dv is the operand a
   * bf16 GEMM would round it to) and ds[k] = Σ_i dy[i, k] · v[i, k] (f32), either absent (null). One
   * pass where mul, a column sum and the GEMM's rounding took three.
   */
  scaleBackward?(dv: View | null, ds: View | null, dy: View, v: View, s: View): void;
}
