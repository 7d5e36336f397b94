#include "common/xds/backoff.h"

#include <doctest/doctest.h>

using namespace ambit::xds;
using std::chrono::milliseconds;

TEST_CASE("backoff doubles from 10 ms and stops at 15 s") {
  const BackoffPolicy p;  // 10 ms .. 15 s, 20% jitter
  struct Row {
    uint32_t attempt;
    double random;
    int64_t want_ms;
  };
  const Row rows[] = {
      {0, 0.0, 10},     {1, 0.0, 20},      {2, 0.0, 40},      {3, 0.0, 80},
      {10, 0.0, 10240}, {11, 0.0, 15000},  {12, 0.0, 15000},  {40, 0.0, 15000},
      {1000, 0.0, 15000},
      // Jitter only shortens: at most 20% off, never above the undithered value.
      {0, 0.5, 9},      {0, 0.999, 9},     {5, 0.5, 288},     {11, 0.999, 12003},
      {1000, 0.5, 13500},
  };
  for (const auto& r : rows) {
    CAPTURE(r.attempt);
    CAPTURE(r.random);
    CHECK(backoff_delay(p, r.attempt, r.random) == milliseconds(r.want_ms));
  }
}

TEST_CASE("out-of-range random numbers and policies are clamped") {
  BackoffPolicy p;
  CHECK(backoff_delay(p, 0, -3.0) == milliseconds(10));
  CHECK(backoff_delay(p, 0, 7.0) == milliseconds(8));
  p.initial = milliseconds(50000);  // above the cap: the cap wins
  CHECK(backoff_delay(p, 0, 0.0) == milliseconds(15000));
  p.jitter = 0.0;
  CHECK(backoff_delay(p, 3, 0.9) == milliseconds(15000));
}

TEST_CASE("the running schedule advances and resets after a good stream") {
  ReconnectBackoff b(BackoffPolicy{}, [] { return 0.0; });
  CHECK(b.next() == milliseconds(10));
  CHECK(b.next() == milliseconds(20));
  CHECK(b.next() == milliseconds(40));
  b.reset();
  CHECK(b.next() == milliseconds(10));
  for (int i = 0; i < 100; ++i) (void)b.next();
  CHECK(b.next() == milliseconds(15000));
}
