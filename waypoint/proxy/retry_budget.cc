#include "waypoint/proxy/retry_budget.h"

#include <algorithm>

namespace ambit::waypoint {
namespace {

int64_t slice_index(const RetryBudgetPolicy& p, SteadyTime now) {
  const int64_t width = std::max<int64_t>(1, p.ttl.count() / static_cast<int64_t>(RetryBudget::kSlices));
  return std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() / width;
}

}  // namespace

RetryBudget::Slice& RetryBudget::current(const RetryBudgetPolicy& p, SteadyTime now) {
  const int64_t idx = slice_index(p, now);
  Slice& s = slices_[static_cast<size_t>(idx) % kSlices];
  if (s.index != idx) s = Slice{idx, 0, 0};  // a bucket from an earlier lap: reuse it
  return s;
}

RetryBudget::Totals RetryBudget::window(const RetryBudgetPolicy& p, SteadyTime now) const {
  const int64_t idx = slice_index(p, now);
  Totals t;
  for (const Slice& s : slices_) {
    if (s.index < 0 || s.index <= idx - static_cast<int64_t>(kSlices) || s.index > idx) continue;
    t.requests += s.requests;
    t.retries += s.retries;
  }
  t.exhausted = exhausted_;
  return t;
}

void RetryBudget::record_request(const RetryBudgetPolicy& p, SteadyTime now) {
  std::lock_guard lock(mu_);
  ++current(p, now).requests;
}

bool RetryBudget::try_retry(const RetryBudgetPolicy& p, SteadyTime now) {
  std::lock_guard lock(mu_);
  Totals t = window(p, now);
  const double allowed = static_cast<double>(p.min_retries_per_second) *
                             (static_cast<double>(p.ttl.count()) / 1000.0) +
                         p.percent / 100.0 * static_cast<double>(t.requests);
  if (static_cast<double>(t.retries) + 1 > allowed) {
    ++exhausted_;
    return false;
  }
  ++current(p, now).retries;
  return true;
}

RetryBudget::Totals RetryBudget::totals(const RetryBudgetPolicy& p, SteadyTime now) {
  std::lock_guard lock(mu_);
  return window(p, now);
}

}  // namespace ambit::waypoint
