// Local rate limiting as Envoy's local_ratelimit HTTP filter does it, from the control plane's
// ambit.v1.LocalRateLimit resources (the EnvoyFilter shape of Istio's tutorials):
//
//  - a token bucket starts full (max_tokens) and gains tokens_per_fill every fill_interval,
//    never beyond max_tokens; fills happen at whole intervals since the bucket was made, so
//    "10 tokens, 10 per minute" lets exactly 10 requests through per minute;
//  - each resource has one bucket per service it applies to (its `hosts`, or every service
//    of the waypoint), shared by all worker threads; `routes`, when set, restricts it to
//    requests whose route has one of those names;
//  - filter_enabled: the share of requests that consult the bucket at all (unset = 0%, as
//    Envoy: an EnvoyFilter must say 100 to turn limiting on); filter_enforced: the share of
//    over-limit requests actually refused (the rest pass and are only counted);
//  - a refused request gets 429 (or the resource's status) with
//    `x-rate-limited: TOO_MANY_REQUESTS` plus the resource's response headers, response flag RL.
//
// A config change builds new limits and takes over every bucket whose resource, service and
// settings did not change, tokens included, so that re-applying the same config (or changing
// another resource) never refills a bucket.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/proto/local_rate_limit.pb.h"

namespace ambit::waypoint {

class RandomSource;

using RateClock = std::chrono::steady_clock;

struct TokenBucketSettings {
  uint32_t max_tokens = 0;
  uint32_t tokens_per_fill = 1;
  std::chrono::milliseconds fill_interval{0};
  bool operator==(const TokenBucketSettings&) const = default;
};

// Thread-safe. Time is passed in so that tests drive it with a fake clock.
class TokenBucket {
 public:
  TokenBucket(TokenBucketSettings settings, RateClock::time_point now);
  // Takes one token if there is one.
  bool try_consume(RateClock::time_point now);
  uint32_t tokens(RateClock::time_point now);
  const TokenBucketSettings& settings() const { return settings_; }
  // Requests that got a token and requests that found the bucket empty, over its life.
  uint64_t granted() const;
  uint64_t refused() const;

 private:
  void refill(RateClock::time_point now);  // with mu_ held

  const TokenBucketSettings settings_;
  mutable std::mutex mu_;
  uint32_t tokens_;
  RateClock::time_point last_fill_;
  uint64_t granted_ = 0, refused_ = 0;
};

struct RateLimitRule {
  std::string name;  // "ns/name" of the EnvoyFilter
  std::vector<std::string> hosts;   // empty = every service
  std::vector<std::string> routes;  // empty = every route
  TokenBucketSettings bucket;
  double enabled_percent = 0;
  double enforced_percent = 0;
  uint32_t status = 429;
  std::vector<std::pair<std::string, std::string>> response_headers;  // sorted by name
  std::string stat_prefix;
  bool operator==(const RateLimitRule&) const = default;
};

RateLimitRule rate_limit_rule(const ambit::v1::LocalRateLimit& resource);

class LocalRateLimits {
 public:
  // Buckets for every (resource, served host) pair; `previous` lends the buckets that did not
  // change. `served_hosts` are the FQDNs of the services this waypoint serves.
  static std::shared_ptr<const LocalRateLimits> build(
      const std::map<std::string, ambit::v1::LocalRateLimit>& resources,
      const std::vector<std::string>& served_hosts, const LocalRateLimits* previous,
      RateClock::time_point now);

  struct Verdict {
    const RateLimitRule* rule = nullptr;  // the rule that refused; null when the request passes
    bool limited() const { return rule != nullptr; }
  };
  // Consults every rule that applies to a request for `host` on route `route_name` (each one
  // takes a token); the first that is over its limit and enforced refuses it.
  Verdict check(const std::string& host, const std::string& route_name, RandomSource& random,
                RateClock::time_point now) const;

  bool empty() const { return buckets_.empty(); }
  // The bucket of `rule_name` for `host`; null when there is none (for tests and dumps).
  std::shared_ptr<TokenBucket> bucket(const std::string& rule_name, const std::string& host) const;
  // For config_dump: every bucket with its settings, tokens left and counts.
  nlohmann::json dump(RateClock::time_point now) const;

 private:
  struct Entry {
    std::shared_ptr<const RateLimitRule> rule;
    std::shared_ptr<TokenBucket> bucket;
  };
  std::vector<std::shared_ptr<const RateLimitRule>> rules_;
  std::map<std::string, std::vector<Entry>> buckets_;  // by host
};

}  // namespace ambit::waypoint
