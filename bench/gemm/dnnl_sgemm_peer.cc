// GEMM peer for bench/gemm.ts: oneDNN called directly, row-major C = A·B with no transposes, A [M, K],
// B [K, N], C [M, N], in both of its f32 forms — dnnl_sgemm and the matmul primitive (made once, outside
// the timing) — reporting the faster ("api"), so the peer is oneDNN at its best on this machine. Inputs
// are random (uniform in [-1, 1), fixed seed); a few sampled entries of C are checked against a float64
// reference for each. Prints one JSON line:
//   {"m":..,"n":..,"k":..,"threads":..,"gflops":..,"median_ms":..,"api":..,"sgemm_gflops":..,...}
// With DTYPE=bf16, A and B are bf16 (the f32 values rounded; the conversion is not timed), C is f32, and
// only the matmul primitive runs (oneDNN 2.x has no bf16 form of its GEMM API).
// Usage: dnnl_sgemm_peer M N K [threads=1] [runs=9] [DTYPE=f32|bf16]
// Build: g++ -O3 -march=native -fopenmp dnnl_sgemm_peer.cc -ldnnl -o dnnl_sgemm_peer
#include <dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

static float bits_to_float(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

static const char *isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    default: return "other";
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s M N K [threads=1] [runs=9]\n", argv[0]);
    return 2;
  }
  const long m = std::atol(argv[1]), n = std::atol(argv[2]), k = std::atol(argv[3]);
  const int threads = argc > 4 ? std::atoi(argv[4]) : 1;
  const int runs = std::max(7, argc > 5 ? std::atoi(argv[5]) : 9);
  const bool bf16 = argc > 6 && std::string(argv[6]) == "bf16";
  if (m <= 0 || n <= 0 || k <= 0 || threads <= 0) {
    std::fprintf(stderr, "bad arguments\n");
    return 2;
  }
  omp_set_num_threads(threads);

  std::vector<float> a(m * k), b(k * n), c(m * n);
  std::mt19937 rng(1234);
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
  for (auto &x : a) x = uni(rng);
  for (auto &x : b) x = uni(rng);
  // bf16 operands: the values rounded to nearest even (so the float64 check uses what is multiplied).
  auto to_bf16 = [](float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  };
  std::vector<uint16_t> a16(bf16 ? m * k : 0), b16(bf16 ? k * n : 0);
  if (bf16) {
    for (long i = 0; i < m * k; i++) a16[i] = to_bf16(a[i]);
    for (long i = 0; i < k * n; i++) b16[i] = to_bf16(b[i]);
    for (long i = 0; i < m * k; i++) a[i] = bits_to_float(a16[i]);
    for (long i = 0; i < k * n; i++) b[i] = bits_to_float(b16[i]);
  }

  auto sgemm = [&]() {
    dnnl_status_t st = dnnl_sgemm('N', 'N', m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
    if (st != dnnl_success) {
      std::fprintf(stderr, "oneDNN gemm failed: status %d\n", (int)st);
      std::exit(1);
    }
  };
  using dt = dnnl::memory::data_type;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream strm(eng);
  const dt in = bf16 ? dt::bf16 : dt::f32;
  const dnnl::memory::desc ad({m, k}, in, {k, 1}), bd({k, n}, in, {n, 1}), cd({m, n}, dt::f32, {n, 1});
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(ad, bd, cd), eng);
  dnnl::matmul prim(pd);
  void* pa = bf16 ? static_cast<void*>(a16.data()) : static_cast<void*>(a.data());
  void* pb = bf16 ? static_cast<void*>(b16.data()) : static_cast<void*>(b.data());
  dnnl::memory am(ad, eng, pa), bm(bd, eng, pb), cm(cd, eng, c.data());
  auto primitive = [&]() {
    prim.execute(strm, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    strm.wait();
  };

  // Median ms of `gemm` after a warm-up (thread pool, JIT kernels, page faults), its result checked.
  auto measure = [&](const std::function<void()>& gemm, std::vector<double>& ms) -> double {
    for (int i = 0; i < 3; i++) gemm();
    ms.clear();
    for (int i = 0; i < runs; i++) {
      auto t0 = std::chrono::steady_clock::now();
      gemm();
      auto t1 = std::chrono::steady_clock::now();
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::mt19937 pick(99);
    double worst = 0;
    for (int s = 0; s < 32; s++) {
      long i = pick() % m, j = pick() % n;
      double ref = 0, mag = 0;
      for (long p = 0; p < k; p++) {
        double t = (double)a[i * k + p] * (double)b[p * n + j];
        ref += t;
        mag += std::fabs(t);
      }
      worst = std::max(worst, std::fabs((double)c[i * n + j] - ref) / (mag + 1e-30));
    }
    if (worst > 1e-5) {
      std::fprintf(stderr, "result check failed: max relative error %g\n", worst);
      std::exit(1);
    }
    std::sort(ms.begin(), ms.end());
    return runs % 2 ? ms[runs / 2] : 0.5 * (ms[runs / 2 - 1] + ms[runs / 2]);
  };
  std::vector<double> ms_sgemm, ms_prim;
  const double med_sgemm = bf16 ? INFINITY : measure(sgemm, ms_sgemm);
  const double med_prim = measure(primitive, ms_prim);
  const bool prim_wins = med_prim < med_sgemm;
  const double med = prim_wins ? med_prim : med_sgemm;
  const std::vector<double>& ms = prim_wins ? ms_prim : ms_sgemm;
  const double gflops = 2.0 * m * n * k / (med * 1e-3) / 1e9;
  const double gf_sgemm = 2.0 * m * n * k / (med_sgemm * 1e-3) / 1e9;
  const double gf_prim = 2.0 * m * n * k / (med_prim * 1e-3) / 1e9;
  const std::string api =
      prim_wins ? std::string("matmul primitive ") + pd.impl_info_str() : "dnnl_sgemm";
  const dnnl_version_t *v = dnnl_version();
  std::printf(
      "{\"m\":%ld,\"n\":%ld,\"k\":%ld,\"threads\":%d,\"gflops\":%.2f,\"median_ms\":%.4f,\"min_ms\":%.4f,\"runs\":%d,"
      "\"dtype\":\"%s\",\"api\":\"%s\",\"sgemm_gflops\":%.2f,\"primitive_gflops\":%.2f,\"dnnl\":\"%d.%d.%d\",\"isa\":\"%s\"}\n",
      m, n, k, threads, gflops, med, ms[0], runs, bf16 ? "bf16" : "f32", api.c_str(), gf_sgemm, gf_prim, v->major, v->minor, v->patch,
      isa_name(dnnl_get_effective_cpu_isa()));
  return 0;
}
