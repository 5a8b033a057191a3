// The caching allocator: exact-size free lists keyed by 64-byte-rounded capacity, guarded by one
// mutex (handles may be finalised on any JS thread that loaded the addon). The cache is bounded
// (VERA_CACHE_LIMIT_MB, default 4096): a block freed past the limit goes back to the system, so
// workloads whose shapes keep changing cannot grow it without end.
#include "buffers.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace vera {
namespace {

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;
  uint64_t cached = 0;
  uint64_t live = 0;
  uint64_t system = 0;  // capacities currently obtained from the system (live + cached blocks)
  uint64_t limit = cache_limit_from_env();

  static uint64_t cache_limit_from_env() {
    const char* v = std::getenv("VERA_CACHE_LIMIT_MB");
    const long long mb = v ? std::atoll(v) : 4096;
    return (uint64_t)(mb < 0 ? 0 : mb) << 20;
  }
};

// Never destroyed: finalizers of JS handles may run during environment teardown, after static
// destructors would have started.
Cache& cache() {
  static Cache* c = new Cache();
  return *c;
}

constexpr size_t kAlign = 64;

}  // namespace

void* cache_alloc(size_t bytes, size_t& capacity) {
  capacity = bytes == 0 ? kAlign : (bytes + kAlign - 1) / kAlign * kAlign;
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free_lists.find(capacity);
    if (it != c.free_lists.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.cached -= capacity;
      c.live += bytes;
      return p;
    }
  }
  void* p = std::aligned_alloc(kAlign, capacity);
  if (!p) {
    cache_empty();  // retry once with the cache released
    p = std::aligned_alloc(kAlign, capacity);
    if (!p) throw std::bad_alloc();
  }
  std::lock_guard<std::mutex> lock(c.mu);
  c.live += bytes;
  c.system += capacity;
  return p;
}

void cache_free(void* p, size_t capacity, size_t bytes) {
  if (!p) return;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.live -= bytes;
  if (c.cached + capacity > c.limit) {
    std::free(p);
    c.system -= capacity;
    return;
  }
  c.free_lists[capacity].push_back(p);
  c.cached += capacity;
}

void cache_empty() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto& kv : c.free_lists)
    for (void* p : kv.second) std::free(p);
  c.free_lists.clear();
  c.system -= c.cached;
  c.cached = 0;
}

CacheStats cache_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return {c.live, c.cached, c.system};
}

}  // namespace vera
