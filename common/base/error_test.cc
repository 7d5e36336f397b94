#include "common/base/error.h"

#include <cerrno>

#include <doctest/doctest.h>

using namespace ambit;

namespace {
Result<int> parse_positive(int v) {
  if (v <= 0) return make_error(Errc::invalid_argument, "value must be positive");
  return v;
}
}  // namespace

TEST_CASE("a Result carries either a value or a named error") {
  auto good = parse_positive(3);
  REQUIRE(good.ok());
  CHECK(*good == 3);

  auto bad = parse_positive(-1);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == Errc::invalid_argument);
  CHECK(bad.error().to_string() == "invalid_argument: value must be positive");
}

TEST_CASE("system errors map to named codes and keep errno for the operator") {
  CHECK(sys_error(-ECONNREFUSED, "connect 10.0.0.1:80").code == Errc::connection_refused);
  CHECK(sys_error(ETIMEDOUT, "connect").code == Errc::timeout);
  CHECK(sys_error(-ECANCELED, "recv").code == Errc::cancelled);
  auto e = sys_error(-EBADF, "recv on fd 99");
  CHECK(e.code == Errc::io);
  CHECK(e.sys_errno == EBADF);
  CHECK(e.to_string().find("recv on fd 99") != std::string::npos);
  CHECK(e.to_string().find("errno 9") != std::string::npos);
}

TEST_CASE("Status is ok by default") {
  Status s;
  CHECK(s.ok());
  Status f = make_error(Errc::closed, "peer closed");
  CHECK_FALSE(f.ok());
  CHECK(errc_name(f.error().code) == "closed");
}
