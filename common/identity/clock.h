// The time source of the certificate manager. Certificates carry wall-clock validity, so
// this is the system clock in production; tests inject a clock they advance by hand to
// drive rotation and backoff without sleeping.
#pragma once

#include <chrono>

namespace ambit::identity {

using TimePoint = std::chrono::system_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimePoint now() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimePoint now() const override { return std::chrono::system_clock::now(); }
};

}  // namespace ambit::identity
