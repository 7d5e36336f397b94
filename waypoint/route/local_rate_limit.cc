#include "waypoint/route/local_rate_limit.h"

#include <algorithm>

#include "waypoint/route/route.h"

namespace ambit::waypoint {
namespace {

// Envoy draws filter_enabled / filter_enforced per request on a per-million scale.
bool draw(double percent, RandomSource& random) {
  if (percent <= 0) return false;
  if (percent >= 100) return true;
  return random.below(1000000) < static_cast<uint64_t>(percent * 10000.0 + 0.5);
}

bool applies_to(const RateLimitRule& r, const std::string& host) {
  return r.hosts.empty() || std::find(r.hosts.begin(), r.hosts.end(), host) != r.hosts.end();
}

}  // namespace

TokenBucket::TokenBucket(TokenBucketSettings settings, RateClock::time_point now)
    : settings_(settings), tokens_(settings.max_tokens), last_fill_(now) {}

void TokenBucket::refill(RateClock::time_point now) {
  if (settings_.fill_interval.count() <= 0 || now <= last_fill_) return;
  const auto fills = (now - last_fill_) / settings_.fill_interval;
  if (fills <= 0) return;
  last_fill_ += fills * settings_.fill_interval;
  const uint64_t added = static_cast<uint64_t>(fills) * settings_.tokens_per_fill;
  tokens_ = static_cast<uint32_t>(
      std::min<uint64_t>(settings_.max_tokens, uint64_t{tokens_} + added));
}

bool TokenBucket::try_consume(RateClock::time_point now) {
  std::lock_guard lock(mu_);
  refill(now);
  if (tokens_ == 0) {
    ++refused_;
    return false;
  }
  --tokens_;
  ++granted_;
  return true;
}

uint64_t TokenBucket::granted() const {
  std::lock_guard lock(mu_);
  return granted_;
}

uint64_t TokenBucket::refused() const {
  std::lock_guard lock(mu_);
  return refused_;
}

uint32_t TokenBucket::tokens(RateClock::time_point now) {
  std::lock_guard lock(mu_);
  refill(now);
  return tokens_;
}

RateLimitRule rate_limit_rule(const ambit::v1::LocalRateLimit& in) {
  RateLimitRule r;
  r.name = in.name();
  r.hosts.assign(in.hosts().begin(), in.hosts().end());
  r.routes.assign(in.routes().begin(), in.routes().end());
  r.bucket.max_tokens = in.bucket().max_tokens();
  r.bucket.tokens_per_fill = in.bucket().tokens_per_fill();
  r.bucket.fill_interval = std::chrono::milliseconds(in.bucket().fill_interval_ms());
  r.enabled_percent = in.has_filter_enabled_percent() ? in.filter_enabled_percent().value() : 0;
  r.enforced_percent = in.has_filter_enforced_percent() ? in.filter_enforced_percent().value() : 0;
  r.status = in.status() != 0 ? in.status() : 429;
  for (const auto& [k, v] : in.response_headers()) r.response_headers.emplace_back(k, v);
  std::sort(r.response_headers.begin(), r.response_headers.end());
  r.stat_prefix = in.stat_prefix();
  return r;
}

std::shared_ptr<const LocalRateLimits> LocalRateLimits::build(
    const std::map<std::string, ambit::v1::LocalRateLimit>& resources,
    const std::vector<std::string>& served_hosts, const LocalRateLimits* previous,
    RateClock::time_point now) {
  auto out = std::make_shared<LocalRateLimits>();
  for (const auto& [key, resource] : resources) {
    auto rule = std::make_shared<const RateLimitRule>(rate_limit_rule(resource));
    out->rules_.push_back(rule);
    for (const auto& host : served_hosts) {
      if (!applies_to(*rule, host)) continue;
      std::shared_ptr<TokenBucket> bucket;
      if (previous != nullptr) {
        auto it = previous->buckets_.find(host);
        if (it != previous->buckets_.end()) {
          for (const auto& e : it->second) {
            if (*e.rule == *rule) bucket = e.bucket;
          }
        }
      }
      if (!bucket) bucket = std::make_shared<TokenBucket>(rule->bucket, now);
      out->buckets_[host].push_back({rule, std::move(bucket)});
    }
  }
  return out;
}

LocalRateLimits::Verdict LocalRateLimits::check(const std::string& host,
                                                const std::string& route_name,
                                                RandomSource& random,
                                                RateClock::time_point now) const {
  Verdict v;
  auto it = buckets_.find(host);
  if (it == buckets_.end()) return v;
  for (const auto& e : it->second) {
    const RateLimitRule& r = *e.rule;
    if (!r.routes.empty() &&
        std::find(r.routes.begin(), r.routes.end(), route_name) == r.routes.end()) {
      continue;
    }
    if (!draw(r.enabled_percent, random)) continue;
    if (e.bucket->try_consume(now)) continue;
    if (v.rule == nullptr && draw(r.enforced_percent, random)) v.rule = &r;
  }
  return v;
}

std::shared_ptr<TokenBucket> LocalRateLimits::bucket(const std::string& rule_name,
                                                     const std::string& host) const {
  auto it = buckets_.find(host);
  if (it == buckets_.end()) return nullptr;
  for (const auto& e : it->second) {
    if (e.rule->name == rule_name) return e.bucket;
  }
  return nullptr;
}

nlohmann::json LocalRateLimits::dump(RateClock::time_point now) const {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [host, entries] : buckets_) {
    for (const auto& e : entries) {
      const RateLimitRule& r = *e.rule;
      out.push_back({{"name", r.name},
                     {"host", host},
                     {"routes", r.routes},
                     {"max_tokens", r.bucket.max_tokens},
                     {"tokens_per_fill", r.bucket.tokens_per_fill},
                     {"fill_interval_ms", r.bucket.fill_interval.count()},
                     {"filter_enabled_percent", r.enabled_percent},
                     {"filter_enforced_percent", r.enforced_percent},
                     {"tokens", e.bucket->tokens(now)},
                     {"granted", e.bucket->granted()},
                     {"over_limit", e.bucket->refused()}});
    }
  }
  return out;
}

}  // namespace ambit::waypoint
