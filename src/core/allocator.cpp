#include "core/allocator.h"

#include "core/error.h"

namespace dense {

CachingAllocator::~CachingAllocator() {
  // Live blocks at exit belong to static tensors; only cached blocks are ours to free.
  release_cached();
}

size_t CachingAllocator::round_size(size_t bytes) {
  if (bytes == 0) return 256;
  if (bytes <= (1u << 20)) return (bytes + 511) & ~size_t(511);  // 512 B granularity up to 1 MiB
  size_t step = size_t(1) << 20;                                 // then 1/8 of the power of two
  size_t p = size_t(1) << (63 - __builtin_clzll(bytes));
  if (p >= 8 * step) step = p / 8;
  return (bytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lock(mutex_);
  // Reuse a cached block of the same size or at most 25% larger: big waste is worse than a fresh allocation.
  auto it = free_blocks_.lower_bound(size);
  if (it != free_blocks_.end() && it->first <= size + size / 4) {
    void* p = it->second;
    const size_t got = it->first;
    free_blocks_.erase(it);
    stats_.bytes_cached -= got;
    live_blocks_[p] = got;
    stats_.bytes_in_use += got;
    if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
    return p;
  }
  void* p = raw_alloc_(size);
  if (!p && !free_blocks_.empty()) {
    for (auto& [s, block] : free_blocks_) raw_free_(block);
    free_blocks_.clear();
    stats_.bytes_cached = 0;
    p = raw_alloc_(size);
  }
  DENSE_CHECK(p != nullptr, "out of memory allocating {} bytes ({} bytes in use)", size, stats_.bytes_in_use);
  ++stats_.raw_allocations;
  live_blocks_[p] = size;
  stats_.bytes_in_use += size;
  if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
  return p;
}

void CachingAllocator::deallocate(void* ptr) {
  if (!ptr) return;
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = live_blocks_.find(ptr);
  DENSE_CHECK(it != live_blocks_.end(), "deallocate of a pointer this allocator does not own");
  const size_t size = it->second;
  live_blocks_.erase(it);
  stats_.bytes_in_use -= size;
  stats_.bytes_cached += size;
  free_blocks_.emplace(size, ptr);
}

void CachingAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& [size, block] : free_blocks_) raw_free_(block);
  free_blocks_.clear();
  stats_.bytes_cached = 0;
}

AllocatorStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_bytes_in_use = stats_.bytes_in_use;
}

}  // namespace dense
