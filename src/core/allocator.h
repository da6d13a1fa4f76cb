#pragma once
// A caching allocator: freed blocks are kept in per-size free lists and handed out again, so a training
// step that allocates the same activation shapes every iteration stops calling malloc/cudaMalloc after the
// first step. Sizes are rounded up so that near-equal requests share blocks.
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <unordered_map>

namespace dense {

struct AllocatorStats {
  size_t bytes_in_use = 0;
  size_t bytes_cached = 0;
  size_t peak_bytes_in_use = 0;
  size_t raw_allocations = 0;
};

class CachingAllocator {
 public:
  using RawAlloc = std::function<void*(size_t)>;
  using RawFree = std::function<void(void*)>;
  CachingAllocator(RawAlloc raw_alloc, RawFree raw_free)
      : raw_alloc_(std::move(raw_alloc)), raw_free_(std::move(raw_free)) {}
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  void* allocate(size_t bytes);
  void deallocate(void* ptr);
  // Returns every cached block to the system (after an out-of-memory, or to measure true peak use).
  void release_cached();
  AllocatorStats stats() const;
  void reset_peak();

  static size_t round_size(size_t bytes);

 private:
  RawAlloc raw_alloc_;
  RawFree raw_free_;
  mutable std::mutex mutex_;
  std::multimap<size_t, void*> free_blocks_;       // size -> block
  std::unordered_map<void*, size_t> live_blocks_;  // block -> size
  AllocatorStats stats_;
};

}  // namespace dense
