#include "waypoint/route/string_match.h"

#include <re2/re2.h>

#include "waypoint/route/request.h"

namespace ambit::waypoint {

namespace v1a3 = istio::networking::v1alpha3;

Result<std::shared_ptr<const re2::RE2>> compile_regex(const std::string& pattern) {
  re2::RE2::Options opts;
  opts.set_log_errors(false);
  auto re = std::make_shared<const re2::RE2>(pattern, opts);
  if (!re->ok()) {
    return make_error(Errc::config, "regex \"" + pattern + "\" does not compile: " + re->error());
  }
  return std::shared_ptr<const re2::RE2>(std::move(re));
}

StringMatcher StringMatcher::exact(std::string value, bool ignore_case) {
  StringMatcher m;
  m.kind_ = Kind::exact;
  m.value_ = ignore_case ? to_lower(value) : std::move(value);
  m.ignore_case_ = ignore_case;
  return m;
}

StringMatcher StringMatcher::prefix(std::string value, bool ignore_case) {
  StringMatcher m = exact(std::move(value), ignore_case);
  m.kind_ = Kind::prefix;
  return m;
}

Result<StringMatcher> StringMatcher::regex(const std::string& pattern) {
  auto re = compile_regex(pattern);
  if (!re.ok()) return re.take_error();
  StringMatcher m;
  m.kind_ = Kind::regex;
  m.value_ = pattern;
  m.re_ = std::move(*re);
  return m;
}

Result<StringMatcher> StringMatcher::compile(const v1a3::StringMatch& m, bool ignore_case) {
  switch (m.match_type_case()) {
    case v1a3::StringMatch::kExact: return exact(m.exact(), ignore_case);
    case v1a3::StringMatch::kPrefix: return prefix(m.prefix(), ignore_case);
    case v1a3::StringMatch::kRegex:
      // Istio reads a bare "*" as "any value", not as a (invalid) regex.
      if (m.regex() == "*") return StringMatcher();
      return regex(m.regex());
    default: return StringMatcher();
  }
}

bool StringMatcher::matches(std::string_view v) const {
  switch (kind_) {
    case Kind::present: return true;
    case Kind::exact: return ignore_case_ ? iequals(v, value_) : v == value_;
    case Kind::prefix:
      if (v.size() < value_.size()) return false;
      return ignore_case_ ? iequals(v.substr(0, value_.size()), value_)
                          : v.substr(0, value_.size()) == value_;
    case Kind::regex: return re2::RE2::FullMatch(re2::StringPiece(v.data(), v.size()), *re_);
  }
  return false;
}

std::string StringMatcher::describe() const {
  switch (kind_) {
    case Kind::present: return "present";
    case Kind::exact: return "exact:" + value_;
    case Kind::prefix: return "prefix:" + value_;
    case Kind::regex: return "regex:" + value_;
  }
  return "present";
}

}  // namespace ambit::waypoint
