#include "common/io/task.h"

#include <array>
#include <cstdint>
#include <new>

namespace ambit::io::detail {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCache = false;  // let ASan see every frame's lifetime
#else
constexpr bool kCache = true;
#endif

constexpr size_t kClassBytes = 256;
constexpr size_t kClasses = 64;                // frames up to 16 KiB are cached
constexpr size_t kPerClass = 32;
constexpr size_t kMaxCachedBytes = 1024 * 1024;  // per thread

// Trivially destructible, so it can be used during any thread_local's destruction; Release
// (below) empties it when the thread ends.
struct Cache {
  std::array<std::array<void*, kPerClass>, kClasses> slots;
  std::array<uint8_t, kClasses> count;
  size_t bytes;
  bool closed;
};
thread_local Cache t_cache{};

struct Release {
  ~Release() {
    Cache& c = t_cache;
    c.closed = true;
    for (size_t k = 0; k < kClasses; ++k) {
      for (size_t i = 0; i < c.count[k]; ++i) ::operator delete(c.slots[k][i]);
      c.count[k] = 0;
    }
    c.bytes = 0;
  }
};
thread_local Release t_release;

size_t class_of(size_t size) { return (size + kClassBytes - 1) / kClassBytes; }

}  // namespace

void* frame_alloc(size_t size) {
  const size_t cls = class_of(size);
  if (!kCache || cls == 0 || cls > kClasses) return ::operator new(size);
  Cache& c = t_cache;
  (void)&t_release;  // registers the thread's release on first use
  if (c.count[cls - 1] > 0) {
    c.bytes -= cls * kClassBytes;
    return c.slots[cls - 1][--c.count[cls - 1]];
  }
  return ::operator new(cls * kClassBytes);
}

void frame_free(void* p, size_t size) noexcept {
  const size_t cls = class_of(size);
  if (!kCache || cls == 0 || cls > kClasses) {
    ::operator delete(p);
    return;
  }
  Cache& c = t_cache;
  if (c.closed || c.count[cls - 1] >= kPerClass || c.bytes + cls * kClassBytes > kMaxCachedBytes) {
    ::operator delete(p);
    return;
  }
  c.slots[cls - 1][c.count[cls - 1]++] = p;
  c.bytes += cls * kClassBytes;
}

}  // namespace ambit::io::detail
