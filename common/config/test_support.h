// Helpers shared by this directory's unit tests.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "common/config/model.h"

namespace ambit::config::testing {

// Loads one in-memory manifest file; fails the test when the load fails.
inline std::shared_ptr<const ConfigSnapshot> must_load(const std::string& yaml,
                                                       const std::string& file = "test.yaml") {
  auto r = load_texts({{file, yaml}});
  if (!r) FAIL_CHECK(r.error().message);
  REQUIRE(r.ok());
  return r->snapshot;
}

// The error message of a load that must fail.
inline std::string must_fail(const std::string& yaml, const std::string& file = "test.yaml") {
  auto r = load_texts({{file, yaml}});
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == Errc::config);
  return r.error().message;
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace ambit::config::testing
