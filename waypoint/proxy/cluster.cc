#include "waypoint/proxy/cluster.h"

#include <algorithm>

namespace ambit::waypoint {

std::string cluster_name(uint32_t port, const std::string& subset, const std::string& host) {
  return "outbound|" + std::to_string(port) + "|" + subset + "|" + host;
}

std::string endpoint_address(const EndpointCandidate& c) {
  return c.ip + ":" + std::to_string(c.target_port);
}

EndpointLoad::EndpointLoad(std::shared_ptr<EndpointStats> s) : stats_(std::move(s)) {
  if (stats_) {
    stats_->in_flight.fetch_add(1, std::memory_order_relaxed);
    stats_->requests.fetch_add(1, std::memory_order_relaxed);
  }
}

EndpointLoad& EndpointLoad::operator=(EndpointLoad&& o) noexcept {
  if (this != &o) {
    release();
    stats_ = std::move(o.stats_);
  }
  return *this;
}

EndpointLoad::~EndpointLoad() { release(); }

void EndpointLoad::release() {
  if (stats_) stats_->in_flight.fetch_sub(1, std::memory_order_relaxed);
  stats_.reset();
}

void Cluster::configure(const DestinationPolicy& policy) {
  std::lock_guard lock(mu_);
  // Called per request: compare (cheap) before copying (allocates).
  const DestinationPolicy& p = policy_;
  if (p.rule == policy.rule && p.load_balancer == policy.load_balancer &&
      p.connection_pool == policy.connection_pool &&
      p.outlier_detection == policy.outlier_detection && p.retry_budget == policy.retry_budget) {
    return;
  }
  policy_ = policy;
  outlier_.configure(policy.outlier_detection);
}

LoadBalancer Cluster::load_balancer() const {
  std::lock_guard lock(mu_);
  return policy_.load_balancer;
}

std::shared_ptr<EndpointStats> Cluster::endpoint(const std::string& address) {
  std::lock_guard lock(mu_);
  auto& s = endpoints_[address];
  if (!s) s = std::make_shared<EndpointStats>();
  return s;
}

size_t Cluster::least_request(const std::vector<std::string>& addresses, RandomSource& random) {
  auto load = [&](size_t i) -> uint32_t {
    auto it = endpoints_.find(addresses[i]);
    return it == endpoints_.end() ? 0u : it->second->in_flight.load(std::memory_order_relaxed);
  };
  return pick_two_choices(addresses.size(), load, random);
}

// Called with mu_ held; `addresses` are the usable endpoints, non-empty.
size_t Cluster::pick_by_policy(const LoadBalancer& lb, const std::vector<std::string>& addresses,
                               const HashInput& request, RandomSource& random,
                               std::string& set_cookie) {
  switch (lb.policy) {
    case LbPolicy::round_robin:
      return round_robin_.fetch_add(1, std::memory_order_relaxed) % addresses.size();
    case LbPolicy::random: return random.below(addresses.size());
    case LbPolicy::passthrough:
      if (auto named = request.headers.get(kOriginalDstHeader)) {
        for (size_t i = 0; i < addresses.size(); ++i) {
          if (addresses[i] == *named) return i;
        }
      }
      return least_request(addresses, random);
    case LbPolicy::least_request: return least_request(addresses, random);
    case LbPolicy::consistent_hash: break;
  }
  if (!lb.hash) return least_request(addresses, random);
  const ConsistentHash& h = *lb.hash;
  std::optional<std::string> key = request_hash_key(h, request);
  if (!key && h.key == ConsistentHash::Key::cookie && h.cookie_ttl) {
    // Envoy issues the cookie when it is missing; its value then steers the next requests.
    static constexpr char kHex[] = "0123456789abcdef";
    std::string value;
    for (int i = 0; i < 16; ++i) value += kHex[random.below(16)];
    set_cookie = issue_cookie(h, value);
    key = std::move(value);
  }
  if (!key) return random.below(addresses.size());
  std::string signature = std::to_string(static_cast<int>(h.algorithm)) + "/" +
                          std::to_string(h.table_size);
  for (const auto& a : addresses) signature += "," + a;
  if (!hash_table_ || signature != hash_signature_) {
    hash_table_ = build_hash_table(h, addresses);
    hash_signature_ = std::move(signature);
  }
  return hash_table_->pick(hash_key(*key));
}

std::optional<Cluster::Choice> Cluster::choose(const std::vector<EndpointCandidate>& candidates,
                                               const HashInput& request, RandomSource& random,
                                               SteadyTime now) {
  if (candidates.empty()) return std::nullopt;
  std::vector<std::string> all;
  all.reserve(candidates.size());
  for (const auto& c : candidates) all.push_back(endpoint_address(c));

  std::lock_guard lock(mu_);
  if (all != known_) {  // endpoints came or went: forget the state of those gone
    outlier_.retain(all);
    std::erase_if(endpoints_, [&](const auto& kv) {
      return std::find(all.begin(), all.end(), kv.first) == all.end() && kv.second->in_flight == 0;
    });
    known_ = all;
  }
  std::vector<bool> usable = outlier_.usable(all, now);
  std::vector<std::string> addresses;
  std::vector<size_t> index;
  for (size_t i = 0; i < all.size(); ++i) {
    if (!usable[i]) continue;
    addresses.push_back(all[i]);
    index.push_back(i);
  }
  if (addresses.empty()) return std::nullopt;
  Choice c;
  size_t picked = pick_by_policy(policy_.load_balancer, addresses, request, random, c.set_cookie);
  c.index = index[picked];
  return c;
}

Result<ClusterMetrics> ClusterMetrics::create(metrics::Registry& registry) {
  ClusterMetrics m;
  auto overflow = registry.counter("ambit_waypoint_upstream_overflow_total",
                                   "Upstream attempts and retries refused by a cluster's limits.",
                                   {"cluster", "limit"});
  if (!overflow) return overflow.take_error();
  m.overflow = *overflow;
  auto ejections = registry.counter("ambit_waypoint_outlier_ejections_total",
                                    "Outlier ejections, and those maxEjectionPercent skipped.",
                                    {"cluster", "result"});
  if (!ejections) return ejections.take_error();
  m.ejections = *ejections;
  return m;
}

void Cluster::count_overflow(const char* limit) {
  if (metrics_.overflow != nullptr) metrics_.overflow->with({name_, limit}).inc();
}

void Cluster::count_retry_budget_exhausted() {
  {
    std::lock_guard lock(mu_);
    ++retry_budget_exhausted_;
  }
  count_overflow("retry_budget");
}

Cluster::Slot& Cluster::Slot::operator=(Slot&& o) noexcept {
  if (this != &o) {
    release();
    cluster_ = std::exchange(o.cluster_, nullptr);
  }
  return *this;
}

void Cluster::Slot::release() {
  if (cluster_ == nullptr) return;
  std::lock_guard lock(cluster_->mu_);
  --cluster_->active_streams_;
  cluster_ = nullptr;
}

Cluster::Admission Cluster::try_admit(bool waiting, Slot& slot) {
  std::lock_guard lock(mu_);
  const ConnectionPool& limits = policy_.connection_pool;
  auto count_pending_overflow = [&] {
    if (waiting) --pending_;
    ++overflow_pending_;
    count_overflow("pending");
    return Admission::overflow_pending;
  };
  if (active_streams_ >= limits.http2_max_requests) {
    if (waiting) --pending_;
    ++overflow_requests_;
    count_overflow("requests");
    return Admission::overflow_requests;
  }
  // Those already waiting go first.
  const bool free = active_streams_ < limits.max_connections && (waiting || pending_ == 0);
  if (free) {
    if (waiting) --pending_;
    ++active_streams_;
    slot = Slot(this);
    return Admission::admitted;
  }
  if (waiting) return Admission::wait;
  if (pending_ >= limits.http1_max_pending_requests) return count_pending_overflow();
  ++pending_;
  return Admission::wait;
}

void Cluster::leave_pending() {
  std::lock_guard lock(mu_);
  if (pending_ > 0) --pending_;
}

io::Task<Cluster::Admission> Cluster::admit(io::EventLoop& loop, io::TimePoint deadline,
                                            Slot& slot) {
  Admission a = try_admit(false, slot);
  while (a == Admission::wait) {
    if (loop.now() >= deadline) {
      leave_pending();
      co_return Admission::wait;
    }
    Status slept = co_await loop.sleep(kPendingPoll);
    if (!slept.ok()) {
      leave_pending();
      co_return Admission::wait;
    }
    a = try_admit(true, slot);
  }
  co_return a;
}

bool Cluster::try_retry() {
  std::lock_guard lock(mu_);
  if (active_retries_ >= policy_.connection_pool.max_retries) {
    ++overflow_retries_;
    count_overflow("retries");
    return false;
  }
  ++active_retries_;
  return true;
}

void Cluster::end_retry() {
  std::lock_guard lock(mu_);
  if (active_retries_ > 0) --active_retries_;
}

ClusterCounters Cluster::counters() const {
  std::lock_guard lock(mu_);
  ClusterCounters c;
  c.active_streams = active_streams_;
  c.pending = pending_;
  c.active_retries = active_retries_;
  c.overflow_pending = overflow_pending_;
  c.overflow_requests = overflow_requests_;
  c.overflow_retries = overflow_retries_;
  c.retry_budget_exhausted = retry_budget_exhausted_;
  return c;
}

bool Cluster::report(const std::string& address, UpstreamResult r, SteadyTime now) {
  std::lock_guard lock(mu_);
  const uint64_t skipped = outlier_.ejections_overflow();
  const bool ejected = outlier_.report(address, r, now, known_.size());
  if (metrics_.ejections != nullptr) {
    if (ejected) metrics_.ejections->with({name_, "ejected"}).inc();
    if (outlier_.ejections_overflow() != skipped) metrics_.ejections->with({name_, "skipped"}).inc();
  }
  return ejected;
}

std::map<std::string, EndpointHealth> Cluster::health(SteadyTime now) {
  std::lock_guard lock(mu_);
  outlier_.tick(now);
  return outlier_.endpoints();
}

std::pair<uint64_t, uint64_t> Cluster::ejections() const {
  std::lock_guard lock(mu_);
  return {outlier_.ejections_total(), outlier_.ejections_overflow()};
}

std::shared_ptr<Cluster> ClusterRegistry::get(const std::string& name) {
  std::lock_guard lock(mu_);
  auto& c = clusters_[name];
  if (!c) c = std::make_shared<Cluster>(name, metrics_);
  return c;
}

std::shared_ptr<Cluster> ClusterRegistry::find(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = clusters_.find(name);
  return it == clusters_.end() ? nullptr : it->second;
}

std::shared_ptr<RetryBudget> ClusterRegistry::retry_budget(const std::string& host) {
  std::lock_guard lock(mu_);
  auto& b = budgets_[host];
  if (!b) b = std::make_shared<RetryBudget>();
  return b;
}

std::vector<std::shared_ptr<Cluster>> ClusterRegistry::all() const {
  std::lock_guard lock(mu_);
  std::vector<std::shared_ptr<Cluster>> out;
  for (const auto& [name, c] : clusters_) out.push_back(c);
  return out;
}

}  // namespace ambit::waypoint
