// Memory-bandwidth roofline for the elementwise kernels: a = b + c over 3×48 MB, 1 and 2 threads.
// g++ -O3 -march=native -fopenmp native/dev/stream.cc -o /tmp/stream && /tmp/stream
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <vector>

int main() {
  const long n = 12 << 20;
  std::vector<float> a(n, 1), b(n, 2), c(n, 3);
  for (int th : {1, 2}) {
    double best = 1e9;
    for (int r = 0; r < 8; r++) {
      auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for num_threads(th) schedule(static)
      for (long i = 0; i < n; i++) a[i] = b[i] + c[i];
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    printf("threads=%d add: %.2f ms, %.1f GB/s (12 bytes/elem)\n", th, best * 1e3, 12.0 * n / best / 1e9);
  }
  return 0;
}
