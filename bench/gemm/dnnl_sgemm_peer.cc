// GEMM peer for bench/gemm.ts: oneDNN's dnnl_sgemm called directly, row-major C = A·B with no
// transposes, A [M, K], B [K, N], C [M, N]. Inputs are random (uniform in [-1, 1), fixed seed); a few
// sampled entries of C are checked against a float64 reference. Prints one JSON line:
//   {"m":..,"n":..,"k":..,"threads":..,"gflops":..,"median_ms":..,...}
// Usage: dnnl_sgemm_peer M N K [threads=1] [runs=9]
// Build: g++ -O3 -march=native -fopenmp dnnl_sgemm_peer.cc -ldnnl -o dnnl_sgemm_peer
#include <dnnl.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

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

  auto gemm = [&]() {
    dnnl_status_t st = dnnl_sgemm('N', 'N', m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
    if (st != dnnl_success) {
      std::fprintf(stderr, "dnnl_sgemm failed: status %d\n", (int)st);
      std::exit(1);
    }
  };

  for (int i = 0; i < 3; i++) gemm();  // warm-up: thread pool, JIT kernels, page faults
  std::vector<double> ms;
  for (int i = 0; i < runs; i++) {
    auto t0 = std::chrono::steady_clock::now();
    gemm();
    auto t1 = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }

  // Check sampled entries against a float64 reference.
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
    double err = std::fabs((double)c[i * n + j] - ref) / (mag + 1e-30);
    worst = std::max(worst, err);
  }
  if (worst > 1e-5) {
    std::fprintf(stderr, "result check failed: max relative error %g\n", worst);
    return 1;
  }

  std::sort(ms.begin(), ms.end());
  const double med = runs % 2 ? ms[runs / 2] : 0.5 * (ms[runs / 2 - 1] + ms[runs / 2]);
  const double gflops = 2.0 * m * n * k / (med * 1e-3) / 1e9;
  const dnnl_version_t *v = dnnl_version();
  std::printf(
      "{\"m\":%ld,\"n\":%ld,\"k\":%ld,\"threads\":%d,\"gflops\":%.2f,\"median_ms\":%.4f,\"min_ms\":%.4f,\"runs\":%d,"
      "\"max_rel_err\":%.3g,\"dnnl\":\"%d.%d.%d\",\"isa\":\"%s\"}\n",
      m, n, k, threads, gflops, med, ms[0], runs, worst, v->major, v->minor, v->patch,
      isa_name(dnnl_get_effective_cpu_isa()));
  return 0;
}
