#include "common/hbone/authority.h"

#include <doctest/doctest.h>

namespace ambit::hbone {
namespace {

TEST_CASE("parse_authority accepts the forms HBONE clients send") {
  struct Row {
    const char* text;
    Authority::Kind kind;
    const char* host;
    uint16_t port;
  };
  const Row rows[] = {
      {"10.0.0.5:8080", Authority::Kind::ipv4, "10.0.0.5", 8080},
      {"255.255.255.255:65535", Authority::Kind::ipv4, "255.255.255.255", 65535},
      {"[fd00::5]:80", Authority::Kind::ipv6, "fd00::5", 80},
      {"[FD00:0:0:0:0:0:0:5]:1", Authority::Kind::ipv6, "fd00::5", 1},  // canonicalised
      {"[::ffff:10.0.0.1]:443", Authority::Kind::ipv6, "::ffff:10.0.0.1", 443},
      {"reviews.bookinfo.svc.cluster.local:9080", Authority::Kind::host,
       "reviews.bookinfo.svc.cluster.local", 9080},
      {"Reviews:9080", Authority::Kind::host, "reviews", 9080},
      {"my_host-1.example:1", Authority::Kind::host, "my_host-1.example", 1},
  };
  for (const Row& r : rows) {
    CAPTURE(r.text);
    auto a = parse_authority(r.text);
    REQUIRE(a.ok());
    CHECK(a->kind == r.kind);
    CHECK(a->host == r.host);
    CHECK(a->port == r.port);
  }
}

TEST_CASE("parse_authority rejects malformed authorities with a reason") {
  struct Row {
    const char* text;
    const char* reason_part;
  };
  const Row rows[] = {
      {"", "empty"},
      {"10.0.0.5", "missing port"},
      {"10.0.0.5:", "missing port"},
      {"10.0.0.5:0", "out of range"},
      {"10.0.0.5:65536", "out of range"},
      {"10.0.0.5:123456", "out of range"},
      {"10.0.0.5:-1", "not a decimal"},
      {"10.0.0.5:+80", "not a decimal"},
      {"10.0.0.5:80a", "not a decimal"},
      {"fd00::5:80", "brackets"},
      {"[fd00::5]", "missing port"},
      {"[fd00::5]80", "missing port"},
      {"[fd00::5:80", "unterminated"},
      {"[10.0.0.5]:80", "IPv6"},
      {"[fe80::1%eth0]:80", "zone"},
      {"user@10.0.0.5:80", "userinfo"},
      {"10.0.0.5:80/path", "path"},
      {"10.0.0.5:80?x=1", "path"},
      {"10.0.0:80", "IPv4"},
      {"10.0.0.256:80", "IPv4"},
      {"010.0.0.5:80", "IPv4"},
      {"bad host:80", "whitespace"},
      {"a..b:80", "empty label"},
      {"-a.b:80", "'-'"},
      {"a.b.:80", "empty label"},
      {":80", "empty host"},
      {"h\xc3\xa9:80", "non-printable"},
  };
  for (const Row& r : rows) {
    CAPTURE(r.text);
    auto a = parse_authority(r.text);
    REQUIRE_FALSE(a.ok());
    CHECK(a.error().code == Errc::invalid_argument);
    CHECK(a.error().message.find(r.reason_part) != std::string::npos);
  }
}

TEST_CASE("format_authority brackets IPv6 and round-trips through the parser") {
  CHECK(format_authority("10.0.0.5", 8080) == "10.0.0.5:8080");
  CHECK(format_authority("fd00::5", 80) == "[fd00::5]:80");
  CHECK(format_authority("reviews", 9080) == "reviews:9080");
  for (const char* text : {"10.0.0.5:8080", "[fd00::5]:80", "reviews.ns:9080"}) {
    auto a = parse_authority(text);
    REQUIRE(a.ok());
    CHECK(format_authority(*a) == text);
  }
}

TEST_CASE("decide_connect: the codec's own answers") {
  struct Row {
    const char* name;
    RequestHead head;
    int status;
    RejectReason reason;
  };
  const Row rows[] = {
      {"plain CONNECT", {"CONNECT", "10.0.0.5:8080"}, 200, RejectReason::none},
      {"CONNECT to a host name", {"CONNECT", "reviews:9080"}, 200, RejectReason::none},
      {"CONNECT to IPv6", {"CONNECT", "[fd00::5]:80"}, 200, RejectReason::none},
      {"GET", {"GET", "10.0.0.5:8080"}, 400, RejectReason::not_connect},
      {"lower-case connect", {"connect", "10.0.0.5:8080"}, 400, RejectReason::not_connect},
      {"extended CONNECT", {"CONNECT", "10.0.0.5:8080", true, true, true}, 400,
       RejectReason::extended_connect},
      {"CONNECT with :path", {"CONNECT", "10.0.0.5:8080", false, false, true}, 400,
       RejectReason::extended_connect},
      {"no authority", {"CONNECT", ""}, 400, RejectReason::bad_authority},
      {"authority without port", {"CONNECT", "10.0.0.5"}, 400, RejectReason::bad_authority},
      {"to 15001", {"CONNECT", "10.0.0.5:15001"}, 400, RejectReason::proxy_port},
      {"to 15006", {"CONNECT", "10.0.0.5:15006"}, 400, RejectReason::proxy_port},
      {"to 15008", {"CONNECT", "[fd00::5]:15008"}, 400, RejectReason::proxy_port},
      {"to 15007 is fine", {"CONNECT", "10.0.0.5:15007"}, 200, RejectReason::none},
  };
  for (const Row& r : rows) {
    CAPTURE(r.name);
    ConnectVerdict v = decide_connect(r.head);
    CHECK(v.status == r.status);
    CHECK(v.reason == r.reason);
    CHECK(v.target.has_value() == (r.status == 200));
    CHECK(v.detail.empty() == (r.status == 200));
  }
  CHECK(decide_connect({"CONNECT", "10.0.0.5:8080"}).target->host == "10.0.0.5");
  CHECK(reject_reason_name(RejectReason::proxy_port) == "proxy_port");
  CHECK(reject_reason_name(RejectReason::not_connect) == "not_connect");
}

}  // namespace
}  // namespace ambit::hbone
