#include <doctest/doctest.h>

#include <thread>

#include "common/io/event_loop.h"
#include "common/io/loop_test_util.h"
#include "common/io/task.h"

namespace ambit::io {
namespace {

Task<int> add_one(int x) { co_return x + 1; }
Task<int> chain(int depth) {
  if (depth == 0) co_return 0;
  int below = co_await chain(depth - 1);
  int one = co_await add_one(below);
  co_return one;
}

}  // namespace

TEST_CASE("a freed frame of a size class serves the next frame of that class on the thread") {
#if defined(__SANITIZE_ADDRESS__)
  return;  // the cache is off under ASan
#endif
  void* a = detail::frame_alloc(1000);
  detail::frame_free(a, 1000);
  void* b = detail::frame_alloc(900);  // same 256-byte class (769..1024)
  CHECK(b == a);
  void* c = detail::frame_alloc(1500);  // another class: not the cached block
  CHECK(c != a);
  detail::frame_free(b, 900);
  detail::frame_free(c, 1500);
  // Beyond 16 KiB frames go straight to the heap and back.
  void* big = detail::frame_alloc(64 * 1024);
  detail::frame_free(big, 64 * 1024);
}

TEST_CASE("frames freed on a thread that ended, or cached on another, are never lost or shared") {
  void* from_thread = nullptr;
  std::thread t([&] {
    from_thread = detail::frame_alloc(2000);
    void* cached = detail::frame_alloc(3000);
    detail::frame_free(cached, 3000);  // released when the thread ends
  });
  t.join();
  detail::frame_free(from_thread, 2000);  // joins this thread's cache
  void* again = detail::frame_alloc(2000);
  void* other = detail::frame_alloc(2000);
  CHECK(again != other);
  detail::frame_free(again, 2000);
  detail::frame_free(other, 2000);
}

TEST_CASE("tasks still run and return through cached frames") {
  auto loop = EventLoop::create();
  REQUIRE(loop.ok());
  int results[3] = {-1, -1, -1};
  for (int& r : results) {
    REQUIRE(testing::run_bounded(**loop, [](int& out) -> Task<void> {
      out = co_await chain(50);
    }(r)));
  }
  CHECK(results[0] == 50);
  CHECK(results[1] == 50);
  CHECK(results[2] == 50);
}

}  // namespace ambit::io
