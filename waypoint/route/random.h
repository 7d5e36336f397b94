// The randomness the waypoint's decisions draw from (weighted destinations, percentages, new
// trace ids), injected so that tests replay exact sequences.
#pragma once

#include <cstdint>

namespace ambit::waypoint {

class RandomSource {
 public:
  virtual ~RandomSource() = default;
  // A value uniformly distributed in [0, bound); bound > 0.
  virtual uint64_t below(uint64_t bound) = 0;
};

}  // namespace ambit::waypoint
