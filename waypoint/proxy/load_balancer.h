// Load balancing of one cluster's endpoints, as DestinationRule trafficPolicy.loadBalancer
// asks (resolved per subset and port in destination_policy.h):
//
//   LEAST_REQUEST (default)  two random choices, fewer requests in flight wins (Envoy's P2C).
//   ROUND_ROBIN              one counter per cluster shared by all workers, so N requests
//                            spread over k endpoints within one of N/k each.
//   RANDOM                   uniform.
//   PASSTHROUGH              Envoy's ORIGINAL_DST. A waypoint receives the service VIP, not a
//                            pod, so the original destination exists only when the request
//                            names a pod itself: the `x-envoy-original-dst-host` header of
//                            the form ip:port naming one of the service's endpoints.
//                            Anything else falls back to least request (the waypoint never
//                            sends to an address outside the service's endpoints).
//   consistentHash           a key from the request (httpHeaderName, httpCookie,
//                            httpQueryParameterName, useSourceIp = the original client from
//                            the HBONE `forwarded` header) hashed onto a ring (ringHash,
//                            minimumRingSize points per endpoint) or a Maglev table
//                            (tableSize, made prime).
//                            Both move about 1/k of the keys when one of k endpoints goes
//                            away and keep the rest in place. A request without the key goes
//                            to a random endpoint; a cookie policy with a ttl then issues the
//                            cookie (Set-Cookie) so the client sticks from its next request.
//
// The hash tables are pure functions of the endpoint addresses and are cached per cluster
// until the endpoint set changes.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "waypoint/route/destination_policy.h"
#include "waypoint/route/request.h"
#include "waypoint/route/route.h"

namespace ambit::waypoint {

// Least request: two random choices, the one with fewer requests in flight (`load(i)`) wins;
// a tie keeps the first.
size_t pick_two_choices(size_t n, const std::function<uint32_t(size_t)>& load,
                        RandomSource& random);

// 64-bit hash of a key (FNV-1a with a final avalanche; stable across runs and builds).
uint64_t hash_key(std::string_view s);

// A consistent-hash table over endpoint addresses; pick() returns an index into `hosts`.
class HashTable {
 public:
  virtual ~HashTable() = default;
  virtual size_t pick(uint64_t hash) const = 0;
};

// Ketama-style ring: each host gets min_size points at hash("host_i").
class RingHash final : public HashTable {
 public:
  RingHash(const std::vector<std::string>& hosts, uint64_t min_size);
  size_t pick(uint64_t hash) const override;
  size_t points() const { return ring_.size(); }

 private:
  std::vector<std::pair<uint64_t, uint32_t>> ring_;  // sorted by hash
};

// Maglev (Eisenbud et al. 2016): every host fills table slots along its own permutation.
class Maglev final : public HashTable {
 public:
  Maglev(const std::vector<std::string>& hosts, uint64_t table_size);
  size_t pick(uint64_t hash) const override;
  size_t size() const { return table_.size(); }

 private:
  std::vector<uint32_t> table_;
};

std::unique_ptr<HashTable> build_hash_table(const ConsistentHash& h,
                                            const std::vector<std::string>& hosts);

// What a consistent-hash policy reads from a request.
struct HashInput {
  const HeaderMap& headers;
  std::string_view path;       // request target, with the query
  std::string_view client_ip;  // original client
};

// The hash key of a request, or nullopt when the request lacks it.
std::optional<std::string> request_hash_key(const ConsistentHash& h, const HashInput& in);

// The value of cookie `name` among the request's Cookie headers.
std::optional<std::string> find_cookie(const HeaderMap& headers, std::string_view name);

// The value of query parameter `name` in `target` ("/p?a=1&b=2").
std::optional<std::string> find_query_parameter(std::string_view target, std::string_view name);

// The Set-Cookie value a cookie policy with a ttl issues for a new key.
std::string issue_cookie(const ConsistentHash& h, std::string_view value);

}  // namespace ambit::waypoint
