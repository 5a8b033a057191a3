// Fused scaled dot-product attention on q [B, Tq, Hq, D], k/v [B, Tk, Hkv, D] (last stride 1, read in
// place). Work is split into (batch, head, block of query rows); a block's scores live in a per-thread
// scratch of Bq × (visible keys), never in memory the size of B·H·Tq·Tk. Causal / sliding-window /
// key-padding masks are applied while the block is formed, and keys no row of the block can see are
// skipped. The backward recomputes P = exp(S − lse) and accumulates dK/dV per kv head (grouped-query
// attention sums the query heads of a group) without races. Small products use single-threaded sgemm.
// Probability dropout draws the keep bits of each row's visible keys from Philox while the block is
// formed (philox_dropout_span), in the forward and again in the backward: no mask is stored.
#include <dnnl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "mathfun.h"
#include "philox.h"
#include "views.h"

namespace vera {

namespace {

struct Dims {
  int64_t b, tq, tk, hq, hkv, d, group, bq, nblk;  // bq: query rows per block
};

// Row access into a [B, T, H, D] view with last stride 1.
struct Heads {
  const float* p;
  int64_t s0, s1, s2;
  const float* at(int64_t b, int64_t t, int64_t h) const { return p + b * s0 + t * s1 + h * s2; }
};

Heads heads(const View& v) { return Heads{static_cast<const float*>(v.base) + v.offset, v.strides[0], v.strides[1], v.strides[2]}; }

void check_head_view(const char* k, const char* what, const View& v, int64_t d) {
  need_f32(k, what, v);
  if (v.ndim != 4) fail(k, "%s must be 4-D [B, T, H, D], got shape %s", what, v.shape_str().c_str());
  if (d > 1 && v.strides[3] != 1) fail(k, "the head axis (last) of %s must be contiguous", what);
  if (v.shape[1] > 1 && d > 0 && v.strides[1] < d)
    fail(k, "rows of %s overlap (time stride %lld < head size %lld)", what, (long long)v.strides[1], (long long)d);
}

Dims check_qkv(const char* k, const View& q, const View& kk, const View& v, const AttentionOpts& o) {
  if (q.ndim != 4 || kk.ndim != 4 || v.ndim != 4) fail(k, "expected 4-D q, k, v");
  Dims d;
  d.b = q.shape[0];
  d.tq = q.shape[1];
  d.hq = q.shape[2];
  d.d = q.shape[3];
  d.tk = kk.shape[1];
  d.hkv = kk.shape[2];
  if (kk.shape[0] != d.b || kk.shape[3] != d.d || !same_shape(kk, v) || (d.hkv == 0 ? d.hq != 0 : d.hq % d.hkv != 0))
    fail(k, "shapes q %s, k %s, v %s do not agree", q.shape_str().c_str(), kk.shape_str().c_str(), v.shape_str().c_str());
  check_head_view(k, "q", q, d.d);
  check_head_view(k, "k", kk, d.d);
  check_head_view(k, "v", v, d.d);
  d.group = d.hkv ? d.hq / d.hkv : 1;
  // Query rows per block (measured on B=4, T=128..512, D=64): with a causal or window mask small blocks
  // skip more invisible keys; without one, big blocks mean fewer, larger GEMMs. Blocks shrink while
  // there are too few tasks for the threads.
  d.bq = (o.causal || o.window > 0) ? 32 : 128;
  while (d.bq > 16 && d.b * d.hq * ((d.tq + d.bq - 1) / d.bq) < 2 * max_threads()) d.bq /= 2;
  d.nblk = (d.tq + d.bq - 1) / d.bq;
  if (o.key_mask.present) {
    need_dtype(k, "keyMask", o.key_mask, DType::Bool);
    need_contig(k, "keyMask", o.key_mask);
    need_numel(k, "keyMask", o.key_mask, d.b * d.tk);
  }
  return d;
}

// Keys [jlo, jhi) that at least one row of the query block [i0, i1) may see.
void block_keys(const Dims& d, const AttentionOpts& o, int64_t i0, int64_t i1, int64_t& jlo, int64_t& jhi) {
  const int64_t shift = d.tk - d.tq;
  jlo = o.window > 0 ? std::max<int64_t>(0, i0 + shift - o.window + 1) : 0;
  jhi = o.causal ? std::min<int64_t>(d.tk, std::max<int64_t>(0, i1 + shift)) : d.tk;
  if (jhi < jlo) jhi = jlo;
}

// Sets the scores row s (keys jlo .. jlo + nk) to −inf where query i may not look.
void mask_row(float* s, const Dims& d, const AttentionOpts& o, const uint8_t* mask, int64_t i, int64_t jlo, int64_t nk) {
  const int64_t ip = i + d.tk - d.tq;
  const int64_t hi = o.causal ? std::min<int64_t>(d.tk, ip + 1) : d.tk;
  const int64_t lo = o.window > 0 ? ip - o.window + 1 : 0;
  const int64_t a = std::clamp<int64_t>(lo - jlo, 0, nk);  // first visible column
  const int64_t b = std::clamp<int64_t>(hi - jlo, a, nk);  // one past the last
  for (int64_t j = 0; j < a; j++) s[j] = -INFINITY;
  for (int64_t j = b; j < nk; j++) s[j] = -INFINITY;
  if (mask) {
    const uint8_t* m = mask + jlo;
    for (int64_t j = a; j < b; j++)
      if (!m[j]) s[j] = -INFINITY;
  }
}

// Per-thread scratch that survives across calls (OpenMP threads are persistent).
float* scratch(int slot, size_t n) {
  thread_local std::vector<float> bufs[4];
  std::vector<float>& b = bufs[slot];
  if (b.size() < n) b.resize(n);
  return b.data();
}

// The dropout mask of the attention probabilities, for one row's visible keys at a time.
struct RowDropout {
  bool on;
  uint64_t seed, offset;
  uint32_t thresh;
  double keep_scale;  // 1/(1 − p)
  int64_t hq, tq, tk;

  RowDropout(const AttentionOpts& o, const Dims& d)
      : on(o.dropout.on),
        seed(o.dropout.seed),
        offset(o.dropout.offset),
        thresh(philox_keep_threshold(o.dropout.p)),
        keep_scale(1.0 / (1.0 - o.dropout.p)),
        hq(d.hq),
        tq(d.tq),
        tk(d.tk) {}

  // out[c] = keep(b, h, i, jlo + c) ? x[c] · scale : 0 for c in [0, n).
  void apply(const float* x, float* out, int64_t n, int64_t b, int64_t h, int64_t i, int64_t jlo, double scale) const {
    const uint64_t start = offset + (uint64_t)(((b * hq + h) * tq + i) * tk + jlo);
    philox_dropout_span(x, out, n, start, seed, thresh, scale);
  }
};

void sgemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc, std::atomic<int>& status) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // empty inner dimension: C = beta · C
    if (beta == 0.0f)
      for (int64_t i = 0; i < m; i++) std::memset(c + i * ldc, 0, sizeof(float) * n);
    return;
  }
  dnnl_status_t s = dnnl_sgemm(ta, tb, m, n, k, alpha, a, std::max<int64_t>(lda, 1), b, std::max<int64_t>(ldb, 1), beta, c,
                               std::max<int64_t>(ldc, 1));
  if (s != dnnl_success) status = (int)s;
}

// Runs f(task) for tasks [0, n) in parallel; sgemm inside runs single-threaded. Exceptions (a failed
// scratch allocation) are caught inside the region and rethrown here.
template <class F>
void parallel_tasks(int64_t n, const char* k, F&& f) {
  std::atomic<bool> oom{false};
  const int nt = (int)std::min<int64_t>(max_threads(), std::max<int64_t>(n, 1));
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
  for (int64_t t = 0; t < n; t++) {
    if (oom) continue;
    try {
      f(t);
    } catch (...) {
      oom = true;
    }
  }
  if (oom) fail(k, "out of memory for the attention scratch");
}

}  // namespace

void attention(const View& out, const View& lse, const View& q, const View& k, const View& v, const AttentionOpts& o) {
  const char* kn = "attention";
  const Dims d = check_qkv(kn, q, k, v, o);
  need_f32_contig(kn, "output", out);
  need_same_shape(kn, "output", out, q);
  need_f32_contig(kn, "lse", lse);
  need_numel(kn, "lse", lse, d.b * d.hq * d.tq);
  const Heads Q = heads(q), K = heads(k), V = heads(v);
  float* op = out.f();
  float* lp = lse.f();
  const uint8_t* mask = o.key_mask.present ? o.key_mask.ptr<uint8_t>() : nullptr;
  const RowDropout drop(o, d);
  std::atomic<int> status{0};
  const int64_t ldo = d.hq * d.d;
  parallel_tasks(d.b * d.hq * d.nblk, kn, [&](int64_t task) {
    const int64_t blk = task % d.nblk, bh = task / d.nblk, h = bh % d.hq, b = bh / d.hq, g = h / d.group;
    const int64_t i0 = blk * d.bq, i1 = std::min(d.tq, i0 + d.bq), nq = i1 - i0;
    int64_t jlo, jhi;
    block_keys(d, o, i0, i1, jlo, jhi);
    const int64_t nk = jhi - jlo;
    float* orow = op + ((b * d.tq + i0) * d.hq + h) * d.d;
    float* lrow = lp + (b * d.hq + h) * d.tq + i0;
    if (nk == 0) {
      for (int64_t r = 0; r < nq; r++) {
        std::memset(orow + r * ldo, 0, sizeof(float) * d.d);
        lrow[r] = -INFINITY;
      }
      return;
    }
    float* S = scratch(0, (size_t)nq * nk);
    float* inv = scratch(1, (size_t)nq);
    const uint8_t* mb = mask ? mask + b * d.tk : nullptr;
    // S = scale · Q Kᵀ over the visible key range.
    sgemm('N', 'T', nq, nk, d.d, o.scale, Q.at(b, i0, h), Q.s1, K.at(b, jlo, g), K.s1, 0.0f, S, nk, status);
    for (int64_t r = 0; r < nq; r++) {
      float* s = S + r * nk;
      mask_row(s, d, o, mb, i0 + r, jlo, nk);
      float m = -INFINITY;
#pragma omp simd reduction(max : m)
      for (int64_t j = 0; j < nk; j++) m = s[j] > m ? s[j] : m;
      if (m == -INFINITY) {
        // The max skips NaN, so a row of only NaN scores lands here too: it stays NaN (as in torch),
        // never an empty row. Masked scores are −∞, so any other value is a NaN.
        bool nan = false;
        for (int64_t j = 0; j < nk; j++) nan |= s[j] != -INFINITY;
        if (nan) {
          for (int64_t j = 0; j < nk; j++) s[j] = NAN;
          lrow[r] = NAN;
          inv[r] = NAN;
          continue;
        }
        std::memset(s, 0, sizeof(float) * nk);  // no visible key: zero output row
        lrow[r] = -INFINITY;
        inv[r] = 0.0f;
        continue;
      }
      float sum = 0;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < nk; j++) {
        const float e = vexp(s[j] - m);
        s[j] = e;
        sum += e;
      }
      inv[r] = 1.0f / sum;  // applied to O's row (D values) instead of P's (nk values)
      lrow[r] = (float)((double)m + std::log((double)sum));
      if (drop.on) {  // zero the dropped entries of E; 1/(1 − p) joins 1/sum
        drop.apply(s, s, nk, b, h, i0 + r, jlo, 1.0);
        inv[r] = (float)(drop.keep_scale / (double)sum);
      }
    }
    // O = diag(1/sum) · dropout(E) V.
    sgemm('N', 'N', nq, d.d, nk, 1.0f, S, nk, V.at(b, jlo, g), V.s1, 0.0f, orow, ldo, status);
    for (int64_t r = 0; r < nq; r++) {
      float* orr = orow + r * ldo;
      const float f = inv[r];
#pragma omp simd
      for (int64_t c = 0; c < d.d; c++) orr[c] *= f;
    }
  });
  if (status != 0) fail(kn, "dnnl_sgemm failed with status %d", (int)status);
}

void attention_backward(const View& dq, const View& dk, const View& dv, const View& dout, const View& q, const View& k,
                        const View& v, const View& out, const View& lse, const AttentionOpts& o) {
  const char* kn = "attentionBackward";
  const Dims d = check_qkv(kn, q, k, v, o);
  check_head_view(kn, "out", out, d.d);
  check_head_view(kn, "dout", dout, d.d);
  need_same_shape(kn, "out", out, q);
  need_same_shape(kn, "dout", dout, q);
  need_f32_contig(kn, "dq", dq);
  need_f32_contig(kn, "dk", dk);
  need_f32_contig(kn, "dv", dv);
  need_same_shape(kn, "dq", dq, q);
  need_same_shape(kn, "dk", dk, k);
  need_same_shape(kn, "dv", dv, v);
  need_f32_contig(kn, "lse", lse);
  need_numel(kn, "lse", lse, d.b * d.hq * d.tq);
  const Heads Q = heads(q), K = heads(k), V = heads(v), O = heads(out), G = heads(dout);
  const float* lp = lse.f();
  float* dqp = dq.f();
  float* dkp = dk.f();
  float* dvp = dv.f();
  const uint8_t* mask = o.key_mask.present ? o.key_mask.ptr<uint8_t>() : nullptr;
  const RowDropout drop(o, d);
  std::atomic<int> status{0};
  const int64_t ldq = d.hq * d.d, ldkv = d.hkv * d.d;

  // One query block of head h: adds into dK/dV (rows jlo.. of dkb/dvb, leading dim ldkv_acc) and
  // writes its dQ rows.
  auto item = [&](int64_t b, int64_t h, int64_t blk, float* dkb, float* dvb, int64_t ld_acc) {
    const int64_t g = h / d.group;
    const int64_t i0 = blk * d.bq, i1 = std::min(d.tq, i0 + d.bq), nq = i1 - i0;
    int64_t jlo, jhi;
    block_keys(d, o, i0, i1, jlo, jhi);
    const int64_t nk = jhi - jlo;
    float* dqrow = dqp + ((b * d.tq + i0) * d.hq + h) * d.d;
    if (nk == 0) {
      for (int64_t r = 0; r < nq; r++) std::memset(dqrow + r * ldq, 0, sizeof(float) * d.d);
      return;
    }
    const float* lrow = lp + (b * d.hq + h) * d.tq + i0;
    const uint8_t* mb = mask ? mask + b * d.tk : nullptr;
    float* P = scratch(0, (size_t)nq * nk);
    float* dP = scratch(1, (size_t)nq * nk);
    float* Di = scratch(2, (size_t)nq);
    // With dropout, Pd = dropout(P) (kept entries scaled by 1/(1 − p)); without, Pd is P.
    float* Pd = drop.on ? scratch(3, (size_t)nq * nk) : P;
    // P = exp(scale · Q Kᵀ − lse), masked entries and rows without keys are 0.
    sgemm('N', 'T', nq, nk, d.d, o.scale, Q.at(b, i0, h), Q.s1, K.at(b, jlo, g), K.s1, 0.0f, P, nk, status);
    for (int64_t r = 0; r < nq; r++) {
      float* p = P + r * nk;
      const float l = lrow[r];
      if (l == -INFINITY) {
        std::memset(p, 0, sizeof(float) * nk);
      } else {
        mask_row(p, d, o, mb, i0 + r, jlo, nk);
#pragma omp simd
        for (int64_t j = 0; j < nk; j++) p[j] = vexp(p[j] - l);
      }
      if (drop.on) drop.apply(p, Pd + r * nk, nk, b, h, i0 + r, jlo, drop.keep_scale);
      const float* go = G.at(b, i0 + r, h);
      const float* oo = O.at(b, i0 + r, h);
      float s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t c = 0; c < d.d; c++) s += go[c] * oo[c];
      Di[r] = s;
    }
    // dV += Pdᵀ dO ; dPd = dO Vᵀ.
    sgemm('T', 'N', nk, d.d, nq, 1.0f, Pd, nk, G.at(b, i0, h), G.s1, 1.0f, dvb + jlo * ld_acc, ld_acc, status);
    sgemm('N', 'T', nq, nk, d.d, 1.0f, G.at(b, i0, h), G.s1, V.at(b, jlo, g), V.s1, 0.0f, dP, nk, status);
    // dS = scale · P ∘ (dP − Di), in place in dP. With dropout the gradient of the undropped P is
    // M ∘ dPd (M: 0 or 1/(1 − p)), so P ∘ dP = Pd ∘ dPd; Di = rowsum(dO ∘ O) still equals rowsum(P ∘ dP).
    for (int64_t r = 0; r < nq; r++) {
      const float* p = P + r * nk;
      float* ds = dP + r * nk;
      const float di = Di[r];
      if (drop.on) {
        const float* pd = Pd + r * nk;
#pragma omp simd
        for (int64_t j = 0; j < nk; j++) ds[j] = o.scale * (pd[j] * ds[j] - p[j] * di);
      } else {
#pragma omp simd
        for (int64_t j = 0; j < nk; j++) ds[j] = o.scale * p[j] * (ds[j] - di);
      }
    }
    // dQ = dS K ; dK += dSᵀ Q.
    sgemm('N', 'N', nq, d.d, nk, 1.0f, dP, nk, K.at(b, jlo, g), K.s1, 0.0f, dqrow, ldq, status);
    sgemm('T', 'N', nk, d.d, nq, 1.0f, dP, nk, Q.at(b, i0, h), Q.s1, 1.0f, dkb + jlo * ld_acc, ld_acc, status);
  };

  const int nt = max_threads();
  const int64_t groups = d.b * d.hkv;
  auto zero_kv = [&](int64_t b, int64_t g) {
    for (int64_t t = 0; t < d.tk; t++) {
      std::memset(dkp + (b * d.tk + t) * ldkv + g * d.d, 0, sizeof(float) * d.d);
      std::memset(dvp + (b * d.tk + t) * ldkv + g * d.d, 0, sizeof(float) * d.d);
    }
  };
  if (groups >= nt || nt == 1) {
    // One task per (batch, kv head): it owns those dK/dV rows outright.
    parallel_tasks(groups, kn, [&](int64_t task) {
      const int64_t b = task / d.hkv, g = task % d.hkv;
      zero_kv(b, g);
      float* dkb = dkp + b * d.tk * ldkv + g * d.d;
      float* dvb = dvp + b * d.tk * ldkv + g * d.d;
      for (int64_t h = g * d.group; h < (g + 1) * d.group; h++)
        for (int64_t blk = 0; blk < d.nblk; blk++) item(b, h, blk, dkb, dvb, ldkv);
    });
  } else {
    // Few kv heads: per (batch, kv head), query blocks run in parallel into per-thread dK/dV
    // partials that are then summed.
    const int64_t items = d.group * d.nblk;
    const size_t part = (size_t)d.tk * d.d;
    std::vector<float> pk((size_t)nt * part), pv((size_t)nt * part);
    for (int64_t b = 0; b < d.b; b++) {
      for (int64_t g = 0; g < d.hkv; g++) {
        std::fill(pk.begin(), pk.end(), 0.0f);
        std::fill(pv.begin(), pv.end(), 0.0f);
        parallel_tasks(items, kn, [&](int64_t it) {
          const int t = omp_get_thread_num();
          item(b, g * d.group + it / d.nblk, it % d.nblk, pk.data() + t * part, pv.data() + t * part, d.d);
        });
        for (int64_t t = 0; t < d.tk; t++) {
          float* kr = dkp + (b * d.tk + t) * ldkv + g * d.d;
          float* vr = dvp + (b * d.tk + t) * ldkv + g * d.d;
          for (int64_t c = 0; c < d.d; c++) {
            float sk = 0, sv = 0;
            for (int th = 0; th < nt; th++) {
              sk += pk[th * part + t * d.d + c];
              sv += pv[th * part + t * d.d + c];
            }
            kr[c] = sk;
            vr[c] = sv;
          }
        }
      }
    }
  }
  if (status != 0) fail(kn, "dnnl_sgemm failed with status %d", (int)status);
}

}  // namespace vera
