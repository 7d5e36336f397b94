#include "common/xds/backoff.h"

#include <algorithm>

namespace ambit::xds {

std::chrono::milliseconds backoff_delay(const BackoffPolicy& policy, uint32_t attempt,
                                        double unit_random) {
  using std::chrono::milliseconds;
  const int64_t max = std::max<int64_t>(policy.max.count(), 0);
  int64_t base = std::clamp<int64_t>(policy.initial.count(), 0, max);
  // Doubling stops once the cap is reached, which also keeps the shift from overflowing.
  for (uint32_t i = 0; i < attempt && base < max; ++i) base = std::min(max, base * 2);
  const double r = std::clamp(unit_random, 0.0, 1.0);
  const double jitter = std::clamp(policy.jitter, 0.0, 1.0);
  const auto cut = static_cast<int64_t>(static_cast<double>(base) * jitter * r);
  return milliseconds(base - cut);
}

ReconnectBackoff::ReconnectBackoff(BackoffPolicy policy, Random random)
    : policy_(policy), random_(std::move(random)) {}

std::chrono::milliseconds ReconnectBackoff::next() {
  auto d = backoff_delay(policy_, attempt_, random_ ? random_() : 0.0);
  if (attempt_ < 64) ++attempt_;
  return d;
}

}  // namespace ambit::xds
