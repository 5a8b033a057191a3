// copy (cast between any two storage dtypes, strided on both sides) and fill. A same-dtype copy of
// dense views is one cudaMemcpyAsync; everything else is one element per thread through the Layout.
#include "kernels.h"
#include "strided.cuh"

namespace vera {
namespace {

template <class T>
__global__ void raw_copy_kernel(Layout<2> L, T* o, const T* a) {
  using namespace cu;
  VERA_FOR_EACH(L, 2, off, { o[off[0]] = a[off[1]]; })
}

__global__ void cast_copy_kernel(Layout<2> L, void* o, DType od, const void* a, DType ad) {
  using namespace cu;
  VERA_FOR_EACH(L, 2, off, { store_from_double(o, off[0], od, load_as_double(a, off[1], ad)); })
}

template <class T>
__global__ void fill_kernel(T* p, int64_t n, T x) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) p[i] = x;
}

template <class T>
void raw_copy(const Layout<2>& L, void* o, const void* a) {
  raw_copy_kernel<T><<<cu::grid_for(L.numel), cu::kThreads, 0, cu::stream()>>>(L, static_cast<T*>(o), static_cast<const T*>(a));
}

// Host-side value of a fill in the buffer's dtype, with the js backend's store semantics.
template <class T>
void launch_fill(void* p, int64_t n, T x) {
  fill_kernel<T><<<cu::grid_for(n), cu::kThreads, 0, cu::stream()>>>(static_cast<T*>(p), n, x);
}

uint16_t host_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu) != 0) return (uint16_t)(((u >> 16) | 0x40) & 0xffff);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

}  // namespace

void copy(const View& out, const View& a) {
  const char* k = "copy";
  if (out.dtype == DType::F64 || a.dtype == DType::F64) fail(k, "f64 is not supported by the cuda backend (use f32)");
  need_same_shape(k, "input", a, out);
  need_no_broadcast(k, "output", out);
  if (out.numel() == 0) return;
  const View* vs[2] = {&out, &a};
  const Layout<2> L = make_layout<2>(k, vs);
  if (out.dtype == a.dtype) {
    const int es = dtype_bytes(out.dtype);
    if (L.ndim == 1 && L.st[0][0] == 1 && L.st[1][0] == 1) {
      cu::check(cudaMemcpyAsync(static_cast<char*>(out.base) + L.off[0] * es, static_cast<const char*>(a.base) + L.off[1] * es,
                                (size_t)L.numel * es, cudaMemcpyDeviceToDevice, cu::stream()),
                k, "cudaMemcpyAsync");
      return;
    }
    switch (es) {
      case 1: raw_copy<uint8_t>(L, out.base, a.base); break;
      case 2: raw_copy<uint16_t>(L, out.base, a.base); break;
      case 4: raw_copy<uint32_t>(L, out.base, a.base); break;
      default: raw_copy<uint64_t>(L, out.base, a.base); break;
    }
  } else {
    cast_copy_kernel<<<cu::grid_for(L.numel), cu::kThreads, 0, cu::stream()>>>(L, out.base, out.dtype, a.base, a.dtype);
  }
  cu::launched(k);
}

void fill(const View& out, double value) {
  const char* k = "fill";
  if (out.dtype == DType::F64) fail(k, "f64 is not supported by the cuda backend (use f32)");
  need_contig(k, "output", out);
  const int64_t n = out.numel();
  if (n == 0) return;
  void* p = static_cast<char*>(out.base) + out.offset * dtype_bytes(out.dtype);
  switch (out.dtype) {
    case DType::F32: launch_fill<float>(p, n, (float)value); break;
    case DType::F16:
      launch_fill<uint16_t>(p, n, value != value ? (std::signbit(value) ? 0xfe00 : 0x7e00) : __half_as_ushort(__float2half_rn((float)value)));
      break;
    case DType::BF16: launch_fill<uint16_t>(p, n, host_bf16((float)value)); break;
    case DType::I32: launch_fill<int32_t>(p, n, cu::to_i32(value)); break;
    case DType::I64: launch_fill<int64_t>(p, n, cu::to_i64(value)); break;
    case DType::Bool: launch_fill<uint8_t>(p, n, value != 0 ? 1 : 0); break;
    case DType::F64: break;
  }
  cu::launched(k);
}

}  // namespace vera
