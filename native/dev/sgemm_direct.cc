// Baseline for the matmul benchmark: dnnl_sgemm called directly (row-major, no JS), best of N runs.
// Build: g++ -O2 -fopenmp native/dev/sgemm_direct.cc -ldnnl -o /tmp/sgemm_direct
// Run:   OMP_NUM_THREADS=2 /tmp/sgemm_direct M N K [reps]
#include <dnnl.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 4) return 1;
  const long m = atol(argv[1]), n = atol(argv[2]), k = atol(argv[3]);
  const int reps = argc > 4 ? atoi(argv[4]) : 10;
  std::vector<float> a(m * k), b(k * n), c(m * n);
  for (size_t i = 0; i < a.size(); i++) a[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
  for (size_t i = 0; i < b.size(); i++) b[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
  double best = 1e30;
  for (int r = 0; r < reps + 2; r++) {
    auto t0 = std::chrono::steady_clock::now();
    dnnl_sgemm('N', 'N', m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r >= 2 && s < best) best = s;
  }
  printf("dnnl_sgemm direct %ldx%ldx%ld threads=%d: %.3f ms, %.1f GFLOP/s\n", m, n, k, omp_get_max_threads(), best * 1e3,
         2.0 * m * n * k / best / 1e9);
  return 0;
}
