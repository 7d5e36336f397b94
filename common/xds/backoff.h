// Reconnect backoff for the control-plane stream: 10 ms doubling to 15 s, with jitter so that
// a fleet of proxies does not reconnect in lockstep after the control plane restarts.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

namespace ambit::xds {

struct BackoffPolicy {
  std::chrono::milliseconds initial{10};
  std::chrono::milliseconds max{15000};
  // Each delay is shortened by up to this fraction, never lengthened, so `max` stays a bound.
  double jitter = 0.2;
};

// The delay before attempt `attempt` (0 = first retry): min(max, initial * 2^attempt), then
// reduced by jitter * `unit_random` (a number in [0, 1)). Pure, for table tests.
std::chrono::milliseconds backoff_delay(const BackoffPolicy& policy, uint32_t attempt,
                                        double unit_random);

// The running schedule of one client: next() advances, reset() after a stream that worked.
class ReconnectBackoff {
 public:
  using Random = std::function<double()>;  // uniform in [0, 1)
  ReconnectBackoff(BackoffPolicy policy, Random random);

  std::chrono::milliseconds next();
  void reset() { attempt_ = 0; }
  uint32_t attempt() const { return attempt_; }

 private:
  BackoffPolicy policy_;
  Random random_;
  uint32_t attempt_ = 0;
};

}  // namespace ambit::xds
