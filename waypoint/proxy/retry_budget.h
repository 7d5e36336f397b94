// The retry budget of one destination service (RetryBudgetPolicy in destination_policy.h),
// shared by every worker: every request deposits, every retry withdraws, over a sliding
// window of `ttl` kept as kSlices buckets. A retry is allowed while
//   retries in the window < min_retries_per_second x ttl + percent % of requests in the window,
// so retries cannot multiply the load on a service that is already failing. Time comes in as
// an argument (tests drive it with a fake clock).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>

#include "waypoint/proxy/outlier.h"
#include "waypoint/route/destination_policy.h"

namespace ambit::waypoint {

class RetryBudget {
 public:
  static constexpr size_t kSlices = 10;

  void record_request(const RetryBudgetPolicy& p, SteadyTime now);
  // Withdraws one retry when the budget allows it; false (counted) otherwise.
  bool try_retry(const RetryBudgetPolicy& p, SteadyTime now);

  struct Totals {
    uint64_t requests = 0, retries = 0;  // in the window
    uint64_t exhausted = 0;              // retries refused, ever
  };
  Totals totals(const RetryBudgetPolicy& p, SteadyTime now);

 private:
  struct Slice {
    int64_t index = -1;  // which slice of time this bucket holds
    uint64_t requests = 0, retries = 0;
  };
  Slice& current(const RetryBudgetPolicy& p, SteadyTime now);
  Totals window(const RetryBudgetPolicy& p, SteadyTime now) const;

  std::mutex mu_;
  std::array<Slice, kSlices> slices_{};
  uint64_t exhausted_ = 0;
};

}  // namespace ambit::waypoint
