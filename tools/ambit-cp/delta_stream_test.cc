#include "tools/ambit-cp/delta_stream.h"

#include <doctest/doctest.h>

#include <set>

using namespace ambit;
using namespace ambit::cp;
namespace ds = envoy::service::discovery::v3;

namespace {

const std::string kA = "type.googleapis.com/istio.workload.Address";
const std::string kZ = "type.googleapis.com/istio.security.Authorization";

config::ResourceSet set_of(std::initializer_list<std::pair<std::string, std::string>> items) {
  config::ResourceSet s;
  for (const auto& [name, version] : items) s[name] = config::Resource{"bytes-" + version, version};
  return s;
}

// A server-side world: resources per type; unknown types are not served.
struct World {
  std::map<std::string, config::ResourceSet> types;
  DeltaStream::View view() {
    return [this](const std::string& t) -> const config::ResourceSet* {
      auto it = types.find(t);
      return it == types.end() ? nullptr : &it->second;
    };
  }
};

ds::DeltaDiscoveryRequest request(const std::string& type, std::vector<std::string> subscribe = {},
                                  std::vector<std::string> unsubscribe = {}) {
  ds::DeltaDiscoveryRequest r;
  r.set_type_url(type);
  for (auto& n : subscribe) r.add_resource_names_subscribe(n);
  for (auto& n : unsubscribe) r.add_resource_names_unsubscribe(n);
  return r;
}

std::set<std::string> names(const ds::DeltaDiscoveryResponse& r) {
  std::set<std::string> out;
  for (const auto& res : r.resources()) out.insert(res.name());
  return out;
}

std::set<std::string> removed(const ds::DeltaDiscoveryResponse& r) {
  return {r.removed_resources().begin(), r.removed_resources().end()};
}

}  // namespace

TEST_CASE("wildcard: everything once, then only what changed, removals by name") {
  World w;
  w.types[kA] = set_of({{"a", "1"}, {"b", "1"}});
  DeltaStream s("n-");
  auto out = s.on_request(request(kA, {"*"}), w.view(), "v1");
  REQUIRE(out.first);
  REQUIRE(out.response);
  const auto& msg = out.response->msg;
  CHECK(names(msg) == std::set<std::string>{"a", "b"});
  CHECK(msg.type_url() == kA);
  CHECK(msg.nonce() == "n-1");
  CHECK(msg.system_version_info() == "v1");
  CHECK(msg.resources(0).resource().type_url() == kA);
  CHECK(msg.resources(0).resource().value() == "bytes-1");
  CHECK(msg.resources(0).version() == "1");

  // Nothing changed: nothing to send.
  CHECK(s.on_update(w.view(), "v1").empty());

  w.types[kA] = set_of({{"a", "2"}, {"c", "1"}});
  auto pushes = s.on_update(w.view(), "v2");
  REQUIRE(pushes.size() == 1);
  CHECK(names(pushes[0].msg) == std::set<std::string>{"a", "c"});
  CHECK(removed(pushes[0].msg) == std::set<std::string>{"b"});
  CHECK(pushes[0].upserted == 2);
  CHECK(pushes[0].removed == 1);
  CHECK(pushes[0].msg.nonce() == "n-2");
}

TEST_CASE("a first request naming nothing is a wildcard subscription (legacy form)") {
  World w;
  w.types[kA] = set_of({{"a", "1"}});
  DeltaStream s;
  auto out = s.on_request(request(kA), w.view(), "v");
  REQUIRE(out.response);
  CHECK(s.is_wildcard(kA));
  CHECK(names(out.response->msg) == std::set<std::string>{"a"});
}

TEST_CASE("the first request always gets an answer, even with nothing to send") {
  World w;
  w.types[kZ] = {};
  DeltaStream s;
  auto out = s.on_request(request(kZ, {"*"}), w.view(), "v");
  REQUIRE(out.response);
  CHECK(out.response->msg.resources_size() == 0);
  CHECK_FALSE(out.response->msg.nonce().empty());
}

TEST_CASE("initial_resource_versions: unchanged resources are not resent, vanished ones removed") {
  World w;
  w.types[kA] = set_of({{"a", "1"}, {"b", "2"}, {"new", "1"}});
  DeltaStream s;
  auto req = request(kA, {"*"});
  (*req.mutable_initial_resource_versions())["a"] = "1";     // current
  (*req.mutable_initial_resource_versions())["b"] = "1";     // stale
  (*req.mutable_initial_resource_versions())["gone"] = "7";  // deleted while disconnected
  auto out = s.on_request(req, w.view(), "v");
  REQUIRE(out.response);
  CHECK(names(out.response->msg) == std::set<std::string>{"b", "new"});
  CHECK(removed(out.response->msg) == std::set<std::string>{"gone"});
  CHECK(s.held(kA)->size() == 3);
}

TEST_CASE("named subscriptions: only the names asked for; missing names reported once") {
  World w;
  w.types[kA] = set_of({{"a", "1"}, {"b", "1"}});
  DeltaStream s;
  auto out = s.on_request(request(kA, {"a", "missing"}), w.view(), "v");
  REQUIRE(out.response);
  CHECK(names(out.response->msg) == std::set<std::string>{"a"});
  CHECK(removed(out.response->msg) == std::set<std::string>{"missing"});
  CHECK_FALSE(s.is_wildcard(kA));

  // A change to a resource nobody asked for is not pushed; the missing name is not repeated.
  w.types[kA] = set_of({{"a", "1"}, {"b", "2"}});
  CHECK(s.on_update(w.view(), "v").empty());

  // When the missing one appears it is sent.
  w.types[kA] = set_of({{"a", "1"}, {"b", "2"}, {"missing", "1"}});
  auto pushes = s.on_update(w.view(), "v");
  REQUIRE(pushes.size() == 1);
  CHECK(names(pushes[0].msg) == std::set<std::string>{"missing"});

  // Subscribing to one more name at run time sends just that one.
  auto more = s.on_request(request(kA, {"b"}), w.view(), "v");
  REQUIRE(more.response);
  CHECK(names(more.response->msg) == std::set<std::string>{"b"});
  CHECK(more.subscribed == std::vector<std::string>{"b"});
}

TEST_CASE("unsubscribing stops updates for that name; unsubscribing * leaves named ones") {
  World w;
  w.types[kA] = set_of({{"a", "1"}, {"b", "1"}});
  DeltaStream s;
  (void)s.on_request(request(kA, {"a", "b"}), w.view(), "v");
  auto un = s.on_request(request(kA, {}, {"b"}), w.view(), "v");
  CHECK_FALSE(un.response);  // nothing to tell: the client dropped b itself
  w.types[kA] = set_of({{"a", "1"}, {"b", "2"}});
  CHECK(s.on_update(w.view(), "v").empty());

  DeltaStream wild;
  (void)wild.on_request(request(kA, {"*", "a"}), w.view(), "v");
  (void)wild.on_request(request(kA, {}, {"*"}), w.view(), "v");
  CHECK(wild.held(kA)->size() == 1);
  w.types[kA] = set_of({{"a", "2"}, {"b", "3"}});
  auto pushes = wild.on_update(w.view(), "v");
  REQUIRE(pushes.size() == 1);
  CHECK(names(pushes[0].msg) == std::set<std::string>{"a"});
}

TEST_CASE("ACK and NACK are told apart; a NACKed version is not resent, the next one is") {
  World w;
  w.types[kA] = set_of({{"a", "1"}});
  DeltaStream s;
  auto first = s.on_request(request(kA, {"*"}), w.view(), "v");
  std::string nonce = first.response->msg.nonce();

  auto ack = request(kA);
  ack.set_response_nonce(nonce);
  auto a = s.on_request(ack, w.view(), "v");
  CHECK(a.ack);
  CHECK_FALSE(a.nack);
  CHECK_FALSE(a.stale_nonce);
  CHECK_FALSE(a.response);

  w.types[kA] = set_of({{"a", "2"}});
  auto pushes = s.on_update(w.view(), "v");
  REQUIRE(pushes.size() == 1);
  auto nack = request(kA);
  nack.set_response_nonce(pushes[0].msg.nonce());
  nack.mutable_error_detail()->set_code(3);
  nack.mutable_error_detail()->set_message("a: address of 5 bytes");
  auto n = s.on_request(nack, w.view(), "v");
  CHECK(n.nack);
  CHECK(n.nack_detail == "a: address of 5 bytes");
  CHECK_FALSE(n.response);                        // no resend of the same bytes
  CHECK(s.on_update(w.view(), "v").empty());      // nor on the next unrelated update

  w.types[kA] = set_of({{"a", "3"}});
  CHECK(s.on_update(w.view(), "v").size() == 1);  // a fixed version gets through

  auto stale = request(kA);
  stale.set_response_nonce(nonce);
  CHECK(s.on_request(stale, w.view(), "v").stale_nonce);
}

TEST_CASE("types are independent; unknown types are refused without state") {
  World w;
  w.types[kA] = set_of({{"a", "1"}});
  w.types[kZ] = set_of({{"ns/p", "1"}});
  DeltaStream s;
  (void)s.on_request(request(kA, {"*"}), w.view(), "v");
  w.types[kZ] = set_of({{"ns/p", "2"}});
  CHECK(s.on_update(w.view(), "v").empty());  // not subscribed to Authorization yet
  auto z = s.on_request(request(kZ, {"*"}), w.view(), "v");
  REQUIRE(z.response);
  CHECK(names(z.response->msg) == std::set<std::string>{"ns/p"});

  auto unknown = s.on_request(request("type.googleapis.com/foo.Bar", {"*"}), w.view(), "v");
  CHECK_FALSE(unknown.known_type);
  CHECK_FALSE(unknown.response);
  CHECK(s.held("type.googleapis.com/foo.Bar") == nullptr);
}
