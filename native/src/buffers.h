// The caching allocator behind BackendBuffer handles: 64-byte aligned blocks, exact-size free lists
// (a training step allocates the same sizes every iteration), and live/cached byte counters.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vera {

// One allocation as seen by a JS handle. `data` becomes null when freed; the Block itself lives until
// the handle is garbage-collected, so a stale handle is detected instead of dereferenced.
struct Block {
  void* data = nullptr;
  size_t bytes = 0;     // requested size (the handle's byteLength)
  size_t capacity = 0;  // size of the underlying allocation (bytes rounded up to 64)
  int dtype = 0;
};

// Returns a block of at least `bytes` bytes and counts `bytes` as live (never null; throws
// std::bad_alloc when out of memory).
void* cache_alloc(size_t bytes, size_t& capacity);
// Puts a block back on the free list of its capacity and stops counting its `bytes` as live.
void cache_free(void* p, size_t capacity, size_t bytes);
// Returns every cached block to the system.
void cache_empty();

struct CacheStats {
  uint64_t allocated;  // bytes held by live blocks (requested sizes)
  uint64_t cached;     // bytes held by the free lists
  uint64_t system;     // bytes obtained from the system (live and cached blocks, at capacity)
};
CacheStats cache_stats();

}  // namespace vera
