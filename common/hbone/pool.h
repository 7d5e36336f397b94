// HboneClientPool: the outbound HBONE connections of one worker thread.
//
// Invariants:
//  - A connection is shared only by requests with the same key: (source identity,
//    destination identity set, destination ip:port, source ip). Identities are never mixed
//    on one connection, because the TLS handshake is what proves them.
//  - At most max_streams_per_connection (100) streams per connection; the next request
//    opens another connection.
//  - At most one handshake per key is in flight: concurrent requests wait for it instead of
//    opening a connection each (a burst of 200 requests makes 2 connections, not 200).
//  - Connections without streams for idle_timeout (5 min) are closed with GOAWAY; failed
//    connections are dropped. Nothing is shared across threads: one pool per worker.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/error.h"
#include "common/hbone/connection.h"
#include "common/io/event_loop.h"
#include "common/tls/context.h"

namespace ambit::hbone {

struct PoolKey {
  std::string source_identity;                      // SPIFFE URI of the local workload
  std::vector<std::string> destination_identities;  // acceptable server SPIFFE URIs, sorted
  io::SocketAddress destination;                    // ip:15008 (pod or waypoint)
  std::string source_ip;                            // "" = let the kernel choose

  // Sorts and de-duplicates the destination identities so equal sets make equal keys.
  static PoolKey make(std::string source_identity, std::vector<std::string> destination_identities,
                      io::SocketAddress destination, std::string source_ip = {});
  std::string to_string() const;
  bool operator==(const PoolKey&) const = default;
};

struct PoolKeyHash {
  size_t operator()(const PoolKey& k) const;
};

struct PoolOptions {
  uint32_t max_streams_per_connection = 100;
  io::Duration idle_timeout = std::chrono::minutes(5);
  io::Duration sweep_interval = std::chrono::seconds(1);  // how often idle/dead ones are found
  // Template for new connections (timeouts, keepalive, mark). The key's source_ip and the
  // target's netns override source and netns_fd.
  ClientConnectOptions connect;
  OpenOptions open;
};

// Where and as whom to connect, beside the key.
struct PoolTarget {
  PoolKey key;
  std::shared_ptr<tls::TlsContext> tls;  // credentials of key.source_identity
  int netns_fd = -1;                     // create new connections' sockets in this netns
  // Overrides of the pool's options for this destination (a waypoint's DestinationRule
  // connectionPool): the TCP connect timeout of a new connection, and how long the key's
  // connections may stay without streams (the last target opened for a key sets it).
  std::optional<io::Duration> connect_timeout;
  std::optional<io::Duration> idle_timeout;
};

struct PoolStats {
  size_t connections = 0;  // open now
  size_t streams = 0;      // active streams over those connections
  size_t connecting = 0;   // handshakes in flight
  uint64_t connections_opened = 0;
  uint64_t connections_failed = 0;       // TCP/TLS failures while connecting
  uint64_t connections_closed_idle = 0;
  uint64_t connections_dropped_dead = 0;  // failed or closed by the peer while pooled
  uint64_t streams_opened = 0;
  uint64_t streams_failed = 0;            // refused (401/503...) or otherwise not opened
};

// One pooled connection, for config_dump.
struct PoolConnectionInfo {
  PoolKey key;
  size_t streams = 0;
  std::string peer_identity;  // the server's verified SPIFFE id
  io::Duration idle_for{};    // zero while streams are open
};

class HboneClientPool {
 public:
  HboneClientPool(io::EventLoop& loop, PoolOptions opts = {});
  ~HboneClientPool();  // closes every connection (GOAWAY); in-flight opens fail
  HboneClientPool(const HboneClientPool&) = delete;
  HboneClientPool& operator=(const HboneClientPool&) = delete;

  // A CONNECT stream to request.authority over a connection for target.key, opening (or
  // waiting for) a connection when none has room. Errors are those of
  // HboneClientConnection::connect() and open_stream() (refusals are not retried).
  io::Task<Result<HboneStream>> open_stream(PoolTarget target, ConnectRequest request);

  PoolStats stats() const;
  std::vector<PoolConnectionInfo> connections() const;
  // Closes idle and drops dead connections now (the sweeper does this periodically).
  void sweep();

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace ambit::hbone
