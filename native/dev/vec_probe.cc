// Vectorisation probe for mathfun.h: compile with -fopt-info-vec-all to see which loops GCC vectorises.
// g++ -O3 -march=native -fopenmp -std=c++17 -mprefer-vector-width=512 -ffp-contract=off -fno-math-errno \
//     -c native/dev/vec_probe.cc -o /tmp/probe.o -fopt-info-vec-optimized -fopt-info-vec-missed
#include <cstdint>

#include "../src/mathfun.h"

using namespace vera;

void probe_tanh(float* o, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) o[i] = vtanh(x[i]);
}
void probe_silu_grad(float* o, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) o[i] = vsilu_grad(x[i]);
}
void probe_gelu_tanh(float* o, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) o[i] = vgelu_tanh(x[i]);
}
void probe_sqrt(float* o, const float* x, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) o[i] = std::sqrt(x[i]);
}
