#include "waypoint/proxy/load_balancer.h"

#include <algorithm>

namespace ambit::waypoint {
namespace {

uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

bool is_prime(uint64_t n) {
  if (n < 2) return false;
  for (uint64_t d = 2; d * d <= n; ++d) {
    if (n % d == 0) return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

size_t pick_two_choices(size_t n, const std::function<uint32_t(size_t)>& load,
                        RandomSource& random) {
  if (n <= 1) return 0;
  size_t a = random.below(n);
  size_t b = random.below(n);
  return load(b) < load(a) ? b : a;
}

uint64_t hash_key(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return mix(h);
}

RingHash::RingHash(const std::vector<std::string>& hosts, uint64_t min_size) {
  if (hosts.empty()) return;
  // Every host gets the same points whatever the number of hosts, so a host leaving frees
  // only its own arcs (scaling points with 1/hosts would let the others' new points take keys
  // from each other). The ring is thus at least min_size, capped like Envoy's maximum.
  constexpr uint64_t kMaxRing = 8 * 1024 * 1024;
  const uint64_t per_host =
      std::clamp<uint64_t>(min_size, 1, std::max<uint64_t>(1, kMaxRing / hosts.size()));
  ring_.reserve(per_host * hosts.size());
  for (uint32_t i = 0; i < hosts.size(); ++i) {
    for (uint64_t p = 0; p < per_host; ++p) {
      ring_.emplace_back(hash_key(hosts[i] + "_" + std::to_string(p)), i);
    }
  }
  std::sort(ring_.begin(), ring_.end());
}

size_t RingHash::pick(uint64_t hash) const {
  if (ring_.empty()) return 0;
  auto it = std::lower_bound(ring_.begin(), ring_.end(), std::make_pair(hash, uint32_t{0}));
  if (it == ring_.end()) it = ring_.begin();  // the ring wraps
  return it->second;
}

Maglev::Maglev(const std::vector<std::string>& hosts, uint64_t table_size) {
  if (hosts.empty()) return;
  uint64_t m = std::max<uint64_t>(table_size, hosts.size());
  while (!is_prime(m)) ++m;  // the permutation needs a prime size
  const size_t n = hosts.size();
  std::vector<uint64_t> offset(n), skip(n), next(n, 0);
  for (size_t i = 0; i < n; ++i) {
    offset[i] = hash_key(hosts[i]) % m;
    skip[i] = hash_key(hosts[i] + "#skip") % (m - 1) + 1;
  }
  constexpr uint32_t kEmpty = 0xffffffffu;
  table_.assign(m, kEmpty);
  uint64_t filled = 0;
  while (true) {
    for (size_t i = 0; i < n; ++i) {
      uint64_t slot = (offset[i] + next[i] * skip[i]) % m;
      while (table_[slot] != kEmpty) {
        ++next[i];
        slot = (offset[i] + next[i] * skip[i]) % m;
      }
      table_[slot] = static_cast<uint32_t>(i);
      ++next[i];
      if (++filled == m) return;
    }
  }
}

size_t Maglev::pick(uint64_t hash) const {
  return table_.empty() ? 0 : table_[hash % table_.size()];
}

std::unique_ptr<HashTable> build_hash_table(const ConsistentHash& h,
                                            const std::vector<std::string>& hosts) {
  if (h.algorithm == ConsistentHash::Algorithm::maglev) {
    return std::make_unique<Maglev>(hosts, h.table_size);
  }
  return std::make_unique<RingHash>(hosts, h.table_size);
}

std::optional<std::string> find_cookie(const HeaderMap& headers, std::string_view name) {
  for (const auto& f : headers.fields()) {
    if (f.name != "cookie") continue;
    std::string_view rest = f.value;
    while (!rest.empty()) {
      size_t semi = rest.find(';');
      std::string_view pair = trim(rest.substr(0, semi));
      rest = semi == std::string_view::npos ? std::string_view{} : rest.substr(semi + 1);
      size_t eq = pair.find('=');
      if (eq == std::string_view::npos || trim(pair.substr(0, eq)) != name) continue;
      std::string_view v = trim(pair.substr(eq + 1));
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      return std::string(v);
    }
  }
  return std::nullopt;
}

std::optional<std::string> find_query_parameter(std::string_view target, std::string_view name) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view rest = target.substr(q + 1);
  if (size_t hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) != name) continue;
    return std::string(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
  }
  return std::nullopt;
}

std::optional<std::string> request_hash_key(const ConsistentHash& h, const HashInput& in) {
  switch (h.key) {
    case ConsistentHash::Key::header: {
      // Envoy hashes every value of a repeated header.
      auto v = in.headers.joined(h.name);
      if (!v) return std::nullopt;
      return *v;
    }
    case ConsistentHash::Key::cookie: return find_cookie(in.headers, h.name);
    case ConsistentHash::Key::query_parameter: return find_query_parameter(in.path, h.name);
    case ConsistentHash::Key::source_ip:
      if (in.client_ip.empty()) return std::nullopt;
      return std::string(in.client_ip);
  }
  return std::nullopt;
}

std::string issue_cookie(const ConsistentHash& h, std::string_view value) {
  std::string out = h.name + "=\"" + std::string(value) + "\"";
  if (h.cookie_ttl) {
    out += "; Max-Age=" + std::to_string(std::max<int64_t>(1, h.cookie_ttl->count() / 1000));
  }
  if (!h.cookie_path.empty()) out += "; Path=" + h.cookie_path;
  return out + "; HttpOnly";
}

}  // namespace ambit::waypoint
