// The Delta xDS protocol core of the client, with no I/O: subscriptions per type, the
// resources received (name -> version + decoded message), the requests to send and the
// ACK/NACK for each response. XdsClient drives it from the gRPC stream; tests drive it with
// plain messages.
//
// Protocol (Envoy's incremental xDS, as istiod and ambit-cp serve it):
//  - The first request per type on a stream carries the whole subscription ("*" and/or
//    names) and, in initial_resource_versions, every resource still held, so that after a
//    reconnect the server sends only what changed.
//  - Each response is answered with its nonce: an ACK, or a NACK whose error_detail names
//    every rejected resource and why. The good resources of a NACKed response are applied
//    anyway (as Istio's ztunnel does); a rejected resource keeps its last good version.
//  - removed_resources deletes; unsubscribing a name (without a wildcard) forgets it locally,
//    since the server will not report its removal.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/error.h"
#include "common/proto/core_base.pb.h"
#include "common/proto/discovery.pb.h"
#include "common/xds/decoders.h"
#include "common/xds/snapshot.h"

namespace ambit::xds {

using envoy::config::core::v3::Node;
using envoy::service::discovery::v3::DeltaDiscoveryRequest;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;

struct Rejection {
  std::string name;
  std::string reason;
};

// The result of one response.
struct ResponseOutcome {
  DeltaDiscoveryRequest reply;       // the ACK or NACK to send
  std::vector<Rejection> rejected;   // non-empty exactly when `reply` is a NACK
  std::optional<Change> change;      // set when the snapshot changed
  size_t applied = 0;                // resources added, replaced or removed
};

// The result of a subscription change.
struct SubscriptionUpdate {
  std::optional<DeltaDiscoveryRequest> request;  // to send now (only while on a stream)
  std::optional<Change> change;                  // resources forgotten by an unsubscribe
};

class DeltaState {
 public:
  explicit DeltaState(Node node);

  // Registers a type and how its resources are decoded. Subscribing needs a registered type.
  Status add_type(std::string type_url, ResourceDecoder decoder);
  bool has_type(std::string_view type_url) const;

  // Adds names ("*" = every resource of the type) to a type's subscription.
  Result<SubscriptionUpdate> subscribe(std::string_view type_url,
                                       const std::vector<std::string>& names);
  // Drops names ("*" ends the wildcard). Without a wildcard, resources that are no longer
  // named are forgotten and reported as removed.
  Result<SubscriptionUpdate> unsubscribe(std::string_view type_url,
                                         const std::vector<std::string>& names);

  // A new stream: the first request of each subscribed type (the node rides on the first
  // request of the stream). Until end_stream(), subscription changes yield requests.
  std::vector<DeltaDiscoveryRequest> begin_stream();
  void end_stream();
  bool on_stream() const { return on_stream_; }

  // Applies one response and says how to answer it.
  ResponseOutcome apply(const DeltaDiscoveryResponse& response);

  std::shared_ptr<const Snapshot> snapshot() const { return snapshot_; }

  // True once every subscribed type has had its first full state: the first response for a
  // wildcard subscription, or every named resource answered or removed. Stays true.
  bool ready() const;
  bool type_ready(std::string_view type_url) const;
  std::vector<std::string> types_not_ready() const;

 private:
  struct TypeState {
    ResourceDecoder decoder;
    bool wildcard = false;
    std::set<std::string, std::less<>> names;
    bool ready = false;
    // Named resources not yet answered; readiness waits for them (until ready latches).
    std::set<std::string, std::less<>> awaiting;
    bool subscribed() const { return wildcard || !names.empty(); }
  };

  Result<TypeState*> find(std::string_view type_url);
  DeltaDiscoveryRequest new_request(std::string_view type_url);
  void update_readiness(TypeState& t, bool got_response);
  // Publishes `resources` as the new map of `type_url` and returns the Change.
  Change publish(const std::string& type_url, std::shared_ptr<const ResourceMap> resources,
                 std::vector<std::string> updated, std::vector<std::string> removed);

  Node node_;
  std::map<std::string, TypeState, std::less<>> types_;
  std::shared_ptr<const Snapshot> snapshot_;
  bool on_stream_ = false;
  bool node_sent_ = false;
};

// "a: reason; b: reason", the error_detail message of a NACK.
std::string describe_rejections(const std::vector<Rejection>& rejected);

}  // namespace ambit::xds
