// A compiled Istio StringMatch (exact / prefix / RE2 regex, or presence), as VirtualService
// matches, CORS origins and the like use it. Regexes must match the whole value (Envoy's
// safe_regex semantics); Istio's `regex: "*"` and an empty StringMatch mean "present".
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/base/error.h"
#include "common/proto/virtual_service.pb.h"

namespace re2 {
class RE2;
}

namespace ambit::waypoint {

class StringMatcher {
 public:
  enum class Kind { present, exact, prefix, regex };

  StringMatcher() = default;  // present
  static StringMatcher exact(std::string value, bool ignore_case = false);
  static StringMatcher prefix(std::string value, bool ignore_case = false);
  // A bad pattern is a config error naming the pattern and RE2's reason.
  static Result<StringMatcher> regex(const std::string& pattern);
  static Result<StringMatcher> compile(const istio::networking::v1alpha3::StringMatch& m,
                                       bool ignore_case = false);

  bool matches(std::string_view value) const;
  Kind kind() const { return kind_; }
  const std::string& value() const { return value_; }
  bool ignore_case() const { return ignore_case_; }
  // A readable form for config_dump: "exact:/a", "prefix:/a", "regex:^/a.*", "present".
  std::string describe() const;

 private:
  Kind kind_ = Kind::present;
  std::string value_;
  bool ignore_case_ = false;
  std::shared_ptr<const re2::RE2> re_;
};

// Compiles an RE2 pattern for whole-value matching; the error says which pattern and why.
Result<std::shared_ptr<const re2::RE2>> compile_regex(const std::string& pattern);

}  // namespace ambit::waypoint
