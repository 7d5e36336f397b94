// The state of one Delta ADS stream, without any I/O: what the client subscribed to per type
// URL, what it holds (name -> version), and which nonces were sent. The gRPC glue feeds it
// requests and config updates and writes whatever responses it returns.
//
// Invariants:
//  - `held` is what the client has (or was sent): it starts from initial_resource_versions
//    and is updated when a response is produced, not when it is ACKed. A NACKed version
//    therefore stays "held", so the same bytes are never resent in a loop; the next change
//    of that resource gets through;
//  - a resource is sent only when its version differs from the held one; a held name that
//    no longer exists (or is no longer subscribed, for names held through initial versions)
//    is sent as a removal;
//  - the first request of a type always gets a response, even an empty one, so a client
//    knows it is in sync; explicitly subscribed names that do not exist are reported
//    removed once, so the client need not wait for them.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/config/resources.h"
#include "common/proto/discovery.pb.h"

namespace ambit::cp {

struct OutgoingResponse {
  envoy::service::discovery::v3::DeltaDiscoveryResponse msg;
  size_t upserted = 0;
  size_t removed = 0;
};

struct RequestOutcome {
  bool known_type = true;  // false: the type URL is not served; nothing else was done
  bool first = false;      // the first request of this type on the stream
  bool ack = false;
  bool nack = false;
  bool stale_nonce = false;  // answers a nonce that is not the latest one of its type
  std::string nonce;         // the response_nonce answered
  std::string nack_detail;   // error_detail.message of a NACK
  std::vector<std::string> subscribed;
  std::vector<std::string> unsubscribed;
  std::optional<OutgoingResponse> response;
};

class DeltaStream {
 public:
  // The resources the stream's caller may see of a type; nullptr for an unknown type.
  using View = std::function<const config::ResourceSet*(const std::string& type_url)>;

  explicit DeltaStream(std::string nonce_prefix = "") : nonce_prefix_(std::move(nonce_prefix)) {}

  RequestOutcome on_request(const envoy::service::discovery::v3::DeltaDiscoveryRequest& req,
                            const View& view, std::string_view system_version);

  // After a config change: one response per subscribed type whose visible resources changed.
  std::vector<OutgoingResponse> on_update(const View& view, std::string_view system_version);

  // What the stream believes the client holds of a type (nullptr if never subscribed).
  const std::map<std::string, std::string>* held(const std::string& type_url) const;
  bool is_wildcard(const std::string& type_url) const;

 private:
  struct TypeState {
    bool wildcard = false;
    std::set<std::string> names;                // explicit subscriptions
    std::map<std::string, std::string> held;    // name -> version
    std::set<std::string> reported_absent;      // explicit names already reported missing
    std::string last_nonce;
  };

  std::optional<OutgoingResponse> compute(const std::string& type_url, TypeState& st,
                                          const config::ResourceSet& resources, bool always,
                                          std::string_view system_version);
  std::string next_nonce();

  std::string nonce_prefix_;
  uint64_t nonce_counter_ = 0;
  std::map<std::string, TypeState> types_;
};

}  // namespace ambit::cp
