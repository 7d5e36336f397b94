#include "common/hbone/pool.h"

#include <algorithm>
#include <coroutine>
#include <functional>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "common/base/log.h"

namespace ambit::hbone {

PoolKey PoolKey::make(std::string source_identity, std::vector<std::string> destination_identities,
                      io::SocketAddress destination, std::string source_ip) {
  std::sort(destination_identities.begin(), destination_identities.end());
  destination_identities.erase(
      std::unique(destination_identities.begin(), destination_identities.end()),
      destination_identities.end());
  return PoolKey{std::move(source_identity), std::move(destination_identities), destination,
                 std::move(source_ip)};
}

std::string PoolKey::to_string() const {
  return fmt::format("{} -> {} [{}]{}", source_identity, destination.to_string(),
                     fmt::join(destination_identities, ","),
                     source_ip.empty() ? "" : " from " + source_ip);
}

size_t PoolKeyHash::operator()(const PoolKey& k) const {
  std::hash<std::string> h;
  size_t v = h(k.source_identity);
  auto mix = [&v](size_t x) { v ^= x + 0x9e3779b97f4a7c15ULL + (v << 6) + (v >> 2); };
  for (const auto& id : k.destination_identities) mix(h(id));
  mix(h(k.destination.to_string()));
  mix(h(k.source_ip));
  return v;
}

namespace {

// One handshake in flight for a key; requests that find it wait for its outcome.
struct Handshake {
  bool done = false;
  std::optional<Error> error;
  std::vector<std::coroutine_handle<>> waiters;

  struct Wait {
    Handshake& hs;
    bool await_ready() const { return hs.done; }
    void await_suspend(std::coroutine_handle<> h) { hs.waiters.push_back(h); }
    void await_resume() const {}
  };
  void finish(std::optional<Error> e) {
    done = true;
    error = std::move(e);
    auto ws = std::move(waiters);
    for (auto h : ws) h.resume();
  }
};

struct Entry {
  std::vector<std::shared_ptr<HboneClientConnection>> conns;
  std::shared_ptr<Handshake> connecting;
  std::optional<io::Duration> idle_timeout;  // the targets' override of the pool's
};

}  // namespace

struct HboneClientPool::State {
  io::EventLoop& loop;
  PoolOptions opts;
  std::unordered_map<PoolKey, Entry, PoolKeyHash> entries;
  PoolStats counters;  // the cumulative fields
  io::CancelToken stop;
  bool closed = false;

  State(io::EventLoop& l, PoolOptions o) : loop(l), opts(std::move(o)) {}

  // Drops dead connections of one entry; with `close_idle`, also those idle too long.
  void prune(const PoolKey& key, Entry& e, bool close_idle) {
    const io::TimePoint now = loop.now();
    auto dead = [&](const std::shared_ptr<HboneClientConnection>& c) {
      if (!c->alive()) {
        ++counters.connections_dropped_dead;
        return true;
      }
      const bool drained = !c->can_open() && c->active_streams() == 0;  // peer sent GOAWAY
      if (close_idle && c->active_streams() == 0 &&
          (drained || now - c->idle_since() >= e.idle_timeout.value_or(opts.idle_timeout))) {
        log::get("hbone")->debug("closing idle HBONE connection {}", key.to_string());
        ++counters.connections_closed_idle;
        c->shutdown();
        return true;
      }
      return false;
    };
    e.conns.erase(std::remove_if(e.conns.begin(), e.conns.end(), dead), e.conns.end());
  }

  void sweep() {
    for (auto it = entries.begin(); it != entries.end();) {
      prune(it->first, it->second, true);
      if (it->second.conns.empty() && !it->second.connecting) {
        it = entries.erase(it);
      } else {
        ++it;
      }
    }
  }

  static io::Task<void> sweeper(std::shared_ptr<State> self) {
    while (!self->closed) {
      Status slept = co_await self->loop.sleep(self->opts.sweep_interval, &self->stop);
      if (!slept.ok()) break;
      self->sweep();
    }
  }

  // The connection with room for one more stream, preferring the busiest so that idle ones
  // drain and can be closed.
  std::shared_ptr<HboneClientConnection> pick(Entry& e) {
    std::shared_ptr<HboneClientConnection> best;
    for (auto& c : e.conns) {
      if (c->can_open() && (!best || c->active_streams() > best->active_streams())) best = c;
    }
    return best;
  }

  ClientConnectOptions connect_options(const PoolTarget& t) const {
    ClientConnectOptions o = opts.connect;
    SessionOptions session = o.connection.session.value_or(SessionOptions{});
    session.max_concurrent_streams = opts.max_streams_per_connection;
    o.connection.session = session;
    if (t.netns_fd >= 0) o.netns_fd = t.netns_fd;
    if (t.connect_timeout) o.connect_timeout = *t.connect_timeout;
    if (!t.key.source_ip.empty()) {
      auto src = io::SocketAddress::from_ip_port(t.key.source_ip, 0);
      if (src) o.source = *src;
    }
    return o;
  }

  static Result<tls::IdentityPolicy> server_policy(const PoolKey& key) {
    std::vector<tls::SpiffeId> ids;
    for (const auto& uri : key.destination_identities) {
      auto id = tls::SpiffeId::parse(uri);
      if (!id) {
        return make_error(Errc::invalid_argument,
                          fmt::format("destination identity '{}': {}", uri, id.error().message));
      }
      ids.push_back(std::move(*id));
    }
    if (ids.empty()) {
      return make_error(Errc::invalid_argument,
                        "no destination identity for " + key.destination.to_string() +
                            ": HBONE needs to know whom it is talking to");
    }
    return tls::IdentityPolicy::any_of(std::move(ids));
  }

  // Opens a connection for target.key; everyone waiting on the key learns the outcome.
  static io::Task<Status> connect(std::shared_ptr<State> self, const PoolTarget& target) {
    auto policy = server_policy(target.key);
    if (!policy.ok()) co_return policy.take_error();
    auto hs = std::make_shared<Handshake>();
    self->entries[target.key].connecting = hs;
    auto conn = co_await HboneClientConnection::connect(
        self->loop, target.key.destination, target.tls, std::move(*policy),
        self->connect_options(target));
    Entry& e = self->entries[target.key];  // re-find: the map may have changed meanwhile
    if (e.connecting == hs) e.connecting = nullptr;
    std::optional<Error> err;
    if (conn.ok() && !self->closed) {
      ++self->counters.connections_opened;
      e.conns.push_back(std::move(*conn));
    } else {
      if (conn.ok()) (*conn)->shutdown();
      ++self->counters.connections_failed;
      err = conn.ok() ? make_error(Errc::cancelled, "HBONE pool closed") : conn.take_error();
    }
    hs->finish(err);
    if (err) co_return *err;
    co_return Status{};
  }

  static io::Task<Result<HboneStream>> open(std::shared_ptr<State> self, PoolTarget target,
                                            ConnectRequest request) {
    if (!target.tls) co_return make_error(Errc::invalid_argument, "no TLS credentials given");
    // Races (a connection filled up or failed between pick and open) are retried a few
    // times; refusals and connect failures are answers and go back to the caller.
    for (int attempt = 0; attempt < 8; ++attempt) {
      if (self->closed) co_return make_error(Errc::cancelled, "HBONE pool closed");
      Entry& e = self->entries[target.key];
      e.idle_timeout = target.idle_timeout;
      self->prune(target.key, e, false);
      if (auto conn = self->pick(e)) {
        Result<HboneStream> s = co_await conn->open_stream(request, self->opts.open);
        if (s.ok()) {
          ++self->counters.streams_opened;
          co_return s;
        }
        const Errc code = s.error().code;
        if (code == Errc::resource_exhausted || code == Errc::closed) {
          continue;  // the connection filled up, drains or went away: try another
        }
        ++self->counters.streams_failed;
        co_return s;
      }
      if (auto hs = e.connecting) {
        co_await Handshake::Wait{*hs};
        if (hs->error) {
          ++self->counters.streams_failed;
          co_return *hs->error;
        }
        continue;
      }
      Status c = co_await connect(self, target);
      if (!c.ok()) {
        ++self->counters.streams_failed;
        co_return c.take_error();
      }
    }
    ++self->counters.streams_failed;
    co_return make_error(Errc::unavailable,
                         "could not place a stream on an HBONE connection to " +
                             target.key.destination.to_string() + " after several attempts");
  }
};

HboneClientPool::HboneClientPool(io::EventLoop& loop, PoolOptions opts)
    : state_(std::make_shared<State>(loop, std::move(opts))) {
  io::spawn(loop, State::sweeper(state_));
}

HboneClientPool::~HboneClientPool() {
  state_->closed = true;
  state_->stop.cancel();
  for (auto& [key, e] : state_->entries) {
    for (auto& c : e.conns) c->shutdown();
  }
  state_->entries.clear();
}

io::Task<Result<HboneStream>> HboneClientPool::open_stream(PoolTarget target,
                                                           ConnectRequest request) {
  return State::open(state_, std::move(target), std::move(request));
}

PoolStats HboneClientPool::stats() const {
  PoolStats s = state_->counters;
  s.connections = s.streams = s.connecting = 0;
  for (const auto& [key, e] : state_->entries) {
    for (const auto& c : e.conns) {
      if (!c->alive()) continue;
      ++s.connections;
      s.streams += c->active_streams();
    }
    if (e.connecting) ++s.connecting;
  }
  return s;
}

std::vector<PoolConnectionInfo> HboneClientPool::connections() const {
  std::vector<PoolConnectionInfo> out;
  const io::TimePoint now = state_->loop.now();
  for (const auto& [key, e] : state_->entries) {
    for (const auto& c : e.conns) {
      if (!c->alive()) continue;
      PoolConnectionInfo info{key, c->active_streams(), {}, {}};
      if (const tls::PeerIdentity* p = c->peer()) info.peer_identity = p->id.to_string();
      if (info.streams == 0) info.idle_for = now - c->idle_since();
      out.push_back(std::move(info));
    }
  }
  return out;
}

void HboneClientPool::sweep() { state_->sweep(); }

}  // namespace ambit::hbone
