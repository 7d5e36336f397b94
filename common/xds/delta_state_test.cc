#include "common/xds/delta_state.h"

#include <doctest/doctest.h>

#include <map>
#include <string>

#include "common/xds/client.h"
#include "common/xds/test_util.h"

using namespace ambit;
using namespace ambit::xds;
using test::address_resource;
using test::ipv4;
using test::response;

namespace {

const std::string kA = "Kubernetes//v1/Pod/default/a";
const std::string kB = "Kubernetes//v1/Pod/default/b";
const std::string kC = "Kubernetes//v1/Pod/default/c";

DeltaState make_state() {
  DeltaState s(make_node(ztunnel_node_id("10.0.0.5", "ztunnel-0", "istio-system"),
                         {{"NAMESPACE", "istio-system"}}));
  REQUIRE(s.add_type(std::string(kAddressType), *decoder_for_type(kAddressType)).ok());
  REQUIRE(s.add_type(std::string(kAuthorizationType), *decoder_for_type(kAuthorizationType)).ok());
  return s;
}

std::vector<std::string> names_of(const ResourceMap& m) {
  std::vector<std::string> out;
  for (const auto& [n, r] : m) out.push_back(n);
  return out;
}

std::string ip_of(const Snapshot& s, const std::string& name) {
  auto a = s.get<istio::workload::Address>(kAddressType, name);
  REQUIRE(a != nullptr);
  return a->workload().addresses(0);
}

}  // namespace

TEST_CASE("a stream opens with one request per subscribed type; the node rides on the first") {
  DeltaState s = make_state();
  REQUIRE(s.subscribe(kAddressType, {"*"}).ok());
  REQUIRE(s.subscribe(kAuthorizationType, {"default/deny", "default/allow"}).ok());
  auto reqs = s.begin_stream();
  REQUIRE(reqs.size() == 2);
  // Types in name order: istio.security.Authorization, then istio.workload.Address.
  CHECK(reqs[0].type_url() == kAuthorizationType);
  CHECK(reqs[0].node().id() ==
        "ztunnel~10.0.0.5~ztunnel-0.istio-system~istio-system.svc.cluster.local");
  CHECK(reqs[0].node().metadata().fields().at("NAMESPACE").string_value() == "istio-system");
  CHECK(std::vector<std::string>(reqs[0].resource_names_subscribe().begin(),
                                 reqs[0].resource_names_subscribe().end()) ==
        std::vector<std::string>{"default/allow", "default/deny"});
  CHECK(reqs[1].type_url() == kAddressType);
  CHECK_FALSE(reqs[1].has_node());
  CHECK(std::vector<std::string>(reqs[1].resource_names_subscribe().begin(),
                                 reqs[1].resource_names_subscribe().end()) ==
        std::vector<std::string>{"*"});
  CHECK(reqs[1].initial_resource_versions().empty());
}

TEST_CASE("a good response is applied and ACKed with its nonce") {
  DeltaState s = make_state();
  REQUIRE(s.subscribe(kAddressType, {"*"}).ok());
  (void)s.begin_stream();
  auto before = s.snapshot();
  auto out = s.apply(response(kAddressType, "n1",
                              {address_resource(kA, "v1", ipv4(10, 0, 1, 1)),
                               address_resource(kB, "v1", ipv4(10, 0, 1, 2))}));
  CHECK(out.reply.type_url() == kAddressType);
  CHECK(out.reply.response_nonce() == "n1");
  CHECK_FALSE(out.reply.has_error_detail());
  CHECK(out.rejected.empty());
  CHECK(out.applied == 2);
  REQUIRE(out.change.has_value());
  CHECK(out.change->updated == std::vector<std::string>{kA, kB});
  CHECK(out.change->removed.empty());
  CHECK(out.change->snapshot == s.snapshot());
  CHECK(names_of(s.snapshot()->resources(kAddressType)) == std::vector<std::string>{kA, kB});
  CHECK(s.snapshot()->find(kAddressType, kA)->version == "v1");
  CHECK(ip_of(*s.snapshot(), kB) == ipv4(10, 0, 1, 2));
  // Published snapshots are immutable: the old one still shows the old state.
  CHECK(before->resources(kAddressType).empty());
  CHECK(s.snapshot()->generation() == before->generation() + 1);
}

TEST_CASE("a bad resource is NACKed by name while the good ones of the batch are applied") {
  DeltaState s = make_state();
  REQUIRE(s.subscribe(kAddressType, {"*"}).ok());
  (void)s.begin_stream();
  (void)s.apply(response(kAddressType, "n1", {address_resource(kB, "v1", ipv4(10, 0, 1, 2))}));

  istio::security::Authorization az;
  az.set_name("x");
  auto out = s.apply(response(
      kAddressType, "n2",
      {address_resource(kA, "v2", ipv4(10, 0, 1, 1)),
       address_resource(kB, "v2", std::string(5, '\x0a')),  // 5-byte address
       test::resource(kC, "v2", az, kAuthorizationType)}));  // wrong type inside the Any
  CHECK(out.reply.response_nonce() == "n2");
  REQUIRE(out.reply.has_error_detail());
  CHECK(out.reply.error_detail().code() == 3);
  const std::string& msg = out.reply.error_detail().message();
  CHECK(msg.find(kB + ": workload address #1 is 5 bytes") != std::string::npos);
  CHECK(msg.find(kC + ": resource is a type.googleapis.com/istio.security.Authorization, not the "
                      "subscribed type.googleapis.com/istio.workload.Address") != std::string::npos);
  CHECK(msg.find(kA) == std::string::npos);
  REQUIRE(out.rejected.size() == 2);

  // The good one advanced; the rejected one keeps its last good version; the other is absent.
  REQUIRE(out.change.has_value());
  CHECK(out.change->updated == std::vector<std::string>{kA});
  CHECK(s.snapshot()->find(kAddressType, kA)->version == "v2");
  CHECK(s.snapshot()->find(kAddressType, kB)->version == "v1");
  CHECK(ip_of(*s.snapshot(), kB) == ipv4(10, 0, 1, 2));
  CHECK(s.snapshot()->find(kAddressType, kC) == nullptr);
}

TEST_CASE("removed_resources deletes; removing what is not held changes nothing") {
  DeltaState s = make_state();
  REQUIRE(s.subscribe(kAddressType, {"*"}).ok());
  (void)s.begin_stream();
  (void)s.apply(response(kAddressType, "n1",
                         {address_resource(kA, "v1", ipv4(10, 0, 1, 1)),
                          address_resource(kB, "v1", ipv4(10, 0, 1, 2))}));
  auto out = s.apply(response(kAddressType, "n2", {}, {kA, "never-seen"}));
  CHECK_FALSE(out.reply.has_error_detail());
  REQUIRE(out.change.has_value());
  CHECK(out.change->removed == std::vector<std::string>{kA});
  CHECK(out.change->updated.empty());
  CHECK(names_of(s.snapshot()->resources(kAddressType)) == std::vector<std::string>{kB});

  auto gen = s.snapshot()->generation();
  out = s.apply(response(kAddressType, "n3", {}, {"never-seen"}));
  CHECK_FALSE(out.change.has_value());
  CHECK(out.reply.response_nonce() == "n3");
  CHECK(s.snapshot()->generation() == gen);

  // The newer removed_resource_names form works as well.
  auto resp = response(kAddressType, "n4", {});
  resp.add_removed_resource_names()->set_name(kB);
  out = s.apply(resp);
  REQUIRE(out.change.has_value());
  CHECK(out.change->removed == std::vector<std::string>{kB});
}

TEST_CASE("after a reconnect the first request carries what is held as initial_resource_versions") {
  DeltaState s = make_state();
  REQUIRE(s.subscribe(kAddressType, {"*"}).ok());
  (void)s.begin_stream();
  (void)s.apply(response(kAddressType, "n1",
                         {address_resource(kA, "v7", ipv4(10, 0, 1, 1)),
                          address_resource(kB, "v3", ipv4(10, 0, 1, 2))}));
  s.end_stream();
  CHECK(s.snapshot()->resources(kAddressType).size() == 2);  // kept while away
  auto reqs = s.begin_stream();
  REQUIRE(reqs.size() == 1);
  std::map<std::string, std::string> versions(reqs[0].initial_resource_versions().begin(),
                                              reqs[0].initial_resource_versions().end());
  CHECK(versions == std::map<std::string, std::string>{{kA, "v7"}, {kB, "v3"}});
  CHECK(reqs[0].has_node());  // a new stream introduces the node again
  CHECK(reqs[0].resource_names_subscribe_size() == 1);
}

TEST_CASE("readiness: first response for a wildcard, every name answered for a named type") {
  DeltaState s = make_state();
  CHECK(s.ready());  // nothing asked yet
  REQUIRE(s.subscribe(kAddressType, {"*"}).ok());
  REQUIRE(s.subscribe(kAuthorizationType, {"default/a", "default/b"}).ok());
  (void)s.begin_stream();
  CHECK_FALSE(s.ready());
  CHECK(s.types_not_ready() ==
        std::vector<std::string>{std::string(kAuthorizationType), std::string(kAddressType)});

  (void)s.apply(response(kAddressType, "n1", {}));  // an empty cluster is a full state too
  CHECK(s.type_ready(kAddressType));
  CHECK_FALSE(s.ready());

  istio::security::Authorization az;
  az.set_name("a");
  (void)s.apply(response(kAuthorizationType, "n2",
                         {test::resource("default/a", "1", az, kAuthorizationType)}));
  CHECK_FALSE(s.type_ready(kAuthorizationType));
  (void)s.apply(response(kAuthorizationType, "n3", {}, {"default/b"}));  // b does not exist
  CHECK(s.ready());

  // Readiness is about the first full state; later subscriptions do not take it back.
  REQUIRE(s.subscribe(kAuthorizationType, {"default/c"}).ok());
  CHECK(s.ready());
}

TEST_CASE("subscription changes on a stream become requests; off a stream they wait") {
  DeltaState s = make_state();
  auto off = s.subscribe(kAddressType, {"a"});
  REQUIRE(off.ok());
  CHECK_FALSE(off->request.has_value());

  auto reqs = s.begin_stream();
  REQUIRE(reqs.size() == 1);
  auto on = s.subscribe(kAddressType, {"a", "b"});  // "a" is already subscribed
  REQUIRE(on.ok());
  REQUIRE(on->request.has_value());
  CHECK(on->request->resource_names_subscribe_size() == 1);
  CHECK(on->request->resource_names_subscribe(0) == "b");
  CHECK_FALSE(on->request->has_node());

  CHECK_FALSE(s.subscribe(kAddressType, {"b"})->request.has_value());  // nothing new

  auto bad = s.subscribe("type.googleapis.com/unknown.Type", {"*"});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == Errc::not_found);
}

TEST_CASE("unsubscribing a named resource forgets it locally; a wildcard keeps everything") {
  DeltaState s = make_state();
  REQUIRE(s.subscribe(kAddressType, {kA, kB}).ok());
  (void)s.begin_stream();
  (void)s.apply(response(kAddressType, "n1",
                         {address_resource(kA, "v1", ipv4(10, 0, 1, 1)),
                          address_resource(kB, "v1", ipv4(10, 0, 1, 2))}));
  auto out = s.unsubscribe(kAddressType, {kA});
  REQUIRE(out.ok());
  REQUIRE(out->request.has_value());
  CHECK(out->request->resource_names_unsubscribe(0) == kA);
  REQUIRE(out->change.has_value());
  CHECK(out->change->removed == std::vector<std::string>{kA});
  CHECK(names_of(s.snapshot()->resources(kAddressType)) == std::vector<std::string>{kB});

  REQUIRE(s.subscribe(kAddressType, {"*"}).ok());
  out = s.unsubscribe(kAddressType, {kB});
  REQUIRE(out.ok());
  CHECK_FALSE(out->change.has_value());  // still covered by the wildcard
  CHECK(names_of(s.snapshot()->resources(kAddressType)) == std::vector<std::string>{kB});

  out = s.unsubscribe(kAddressType, {"*"});
  REQUIRE(out.ok());
  REQUIRE(out->change.has_value());  // nothing is named any more
  CHECK(out->change->removed == std::vector<std::string>{kB});
  CHECK(s.snapshot()->resources(kAddressType).empty());
}

TEST_CASE("a response for a type nobody registered is NACKed, not ignored") {
  DeltaState s = make_state();
  (void)s.begin_stream();
  auto out = s.apply(response("type.googleapis.com/other.Thing", "n9", {}));
  CHECK(out.reply.response_nonce() == "n9");
  REQUIRE(out.reply.has_error_detail());
  CHECK(out.reply.error_detail().message().find("other.Thing has no registered decoder") !=
        std::string::npos);
  CHECK_FALSE(out.change.has_value());
}

TEST_CASE("a resource named only by resource_name, or not at all") {
  DeltaState s = make_state();
  REQUIRE(s.subscribe(kAddressType, {"*"}).ok());
  (void)s.begin_stream();
  auto r = address_resource("", "v1", ipv4(10, 0, 1, 1));
  auto unnamed = r;
  r.mutable_resource_name()->set_name(kA);
  auto out = s.apply(response(kAddressType, "n1", {r, unnamed}));
  CHECK(s.snapshot()->find(kAddressType, kA) != nullptr);
  REQUIRE(out.rejected.size() == 1);
  CHECK(out.reply.error_detail().message() == "(unnamed resource): resource has no name");
}
