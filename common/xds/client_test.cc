// XdsClient against an in-process ADS server on 127.0.0.1 that scripts its responses and
// records every request and header it receives.
#include "common/xds/client.h"

#include <grpcpp/grpcpp.h>
#include <openssl/x509v3.h>

#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "common/proto/ads.grpc.pb.h"
#include "common/tls/test_pki.h"
#include "common/xds/test_server.h"
#include "common/xds/test_util.h"

using namespace ambit;
using namespace ambit::xds;
using namespace std::chrono_literals;
using envoy::service::discovery::v3::AggregatedDiscoveryService;
using test::address_resource;
using test::ipv4;
using test::response;
using test::TestServer;

namespace {

const std::string kA = "Kubernetes//v1/Pod/default/a";
const std::string kB = "Kubernetes//v1/Pod/default/b";
const std::string kBad = "Kubernetes//v1/Pod/default/bad";

template <class F>
bool eventually(F&& pred, std::chrono::milliseconds timeout = 5s) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

struct TokenFile {
  std::string path;
  explicit TokenFile(const std::string& token) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "xds-token-XXXXXX").string();
    int fd = mkstemp(tmpl.data());
    REQUIRE(fd >= 0);
    close(fd);
    path = tmpl;
    write(token);
  }
  void write(const std::string& token) const { std::ofstream(path) << token << "\n"; }
  ~TokenFile() { std::remove(path.c_str()); }
};

XdsConfig test_config(int port, const std::string& token_file) {
  XdsConfig c;
  c.address = "127.0.0.1:" + std::to_string(port);
  c.insecure = true;
  c.token_file = token_file;
  c.node = make_node("ztunnel~127.0.0.1~ztunnel-0.istio-system~istio-system.svc.cluster.local",
                     {{"NAMESPACE", "istio-system"}});
  return c;
}

struct Changes {
  std::mutex mu;
  std::vector<Change> seen;
  void operator()(const Change& c) {
    std::lock_guard lock(mu);
    seen.push_back(c);
  }
  size_t size() {
    std::lock_guard lock(mu);
    return seen.size();
  }
  Change at(size_t i) {
    std::lock_guard lock(mu);
    return seen.at(i);
  }
};

// The value of one series in Prometheus text, or -1 when absent.
double metric_value(const std::string& text, const std::string& series) {
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + series.size() + 2));
}

std::map<std::string, std::string> versions_of(const DeltaDiscoveryRequest& r) {
  return {r.initial_resource_versions().begin(), r.initial_resource_versions().end()};
}

}  // namespace

TEST_CASE("the client subscribes with its token and cluster, applies, ACKs, NACKs and removes") {
  auto server = std::make_unique<TestServer>();
  TokenFile token("secret-1");
  metrics::Registry registry;
  XdsClient client(test_config(server->port, token.path), registry);
  REQUIRE(client.add_type(std::string(kAddressType), *decoder_for_type(kAddressType)).ok());
  REQUIRE(client.subscribe(kAddressType, {"*"}).ok());
  Changes changes;
  client.on_change([&](const Change& c) { changes(c); });
  REQUIRE(client.start().ok());

  auto first = server->ads.next_request();
  REQUIRE(first.has_value());
  CHECK(first->type_url() == kAddressType);
  REQUIRE(first->resource_names_subscribe_size() == 1);
  CHECK(first->resource_names_subscribe(0) == "*");
  CHECK(first->node().id() ==
        "ztunnel~127.0.0.1~ztunnel-0.istio-system~istio-system.svc.cluster.local");
  CHECK(server->ads.header("authorization") == "Bearer secret-1");
  CHECK(server->ads.header("clusterid") == "Kubernetes");
  CHECK_FALSE(client.ready());

  // A plain update: ACK with the nonce, snapshot and notification.
  REQUIRE(server->ads.send(response(kAddressType, "n1", {address_resource(kA, "1", ipv4(10, 0, 1, 1))})));
  auto ack = server->ads.next_request();
  REQUIRE(ack.has_value());
  CHECK(ack->response_nonce() == "n1");
  CHECK_FALSE(ack->has_error_detail());
  CHECK(client.wait_ready(5s));
  CHECK(client.connected());
  CHECK(client.snapshot()->find(kAddressType, kA) != nullptr);
  REQUIRE(changes.size() == 1);
  CHECK(changes.at(0).updated == std::vector<std::string>{kA});

  // One good Address, one with a 5-byte address, one Any of the wrong type.
  istio::security::Authorization az;
  az.set_name("x");
  REQUIRE(server->ads.send(response(kAddressType, "n2",
                                    {address_resource(kB, "1", ipv4(10, 0, 1, 2)),
                                     address_resource(kBad, "1", std::string(5, '\x0a')),
                                     test::resource("wrong", "1", az, kAuthorizationType)})));
  auto nack = server->ads.next_request();
  REQUIRE(nack.has_value());
  CHECK(nack->response_nonce() == "n2");
  REQUIRE(nack->has_error_detail());
  const std::string& why = nack->error_detail().message();
  CHECK(why.find(kBad + ": workload address #1 is 5 bytes") != std::string::npos);
  CHECK(why.find("wrong: resource is a type.googleapis.com/istio.security.Authorization") !=
        std::string::npos);
  CHECK(why.find(kB + ":") == std::string::npos);
  auto snap = client.snapshot();
  CHECK(snap->find(kAddressType, kB) != nullptr);
  CHECK(snap->find(kAddressType, kBad) == nullptr);
  CHECK(snap->find(kAddressType, "wrong") == nullptr);

  // Removal.
  REQUIRE(server->ads.send(response(kAddressType, "n3", {}, {kA})));
  ack = server->ads.next_request();
  REQUIRE(ack.has_value());
  CHECK(ack->response_nonce() == "n3");
  CHECK(client.snapshot()->find(kAddressType, kA) == nullptr);
  CHECK(client.snapshot()->find(kAddressType, kB) != nullptr);
  REQUIRE(changes.size() == 3);
  CHECK(changes.at(2).removed == std::vector<std::string>{kA});

  const std::string text = registry.render();
  const std::string label = "{type_url=\"type.googleapis.com/istio.workload.Address\"}";
  CHECK(metric_value(text, "ambit_xds_nacks_total" + label) == 1);
  CHECK(metric_value(text, "ambit_xds_updates_total" + label) == 3);
  CHECK(metric_value(text, "ambit_xds_connected") == 1);
  client.stop();
}

TEST_CASE("a restarted control plane gets initial_resource_versions; the state was kept meanwhile") {
  auto server = std::make_unique<TestServer>();
  const int port = server->port;
  TokenFile token("secret-1");
  metrics::Registry registry;
  XdsClient client(test_config(port, token.path), registry);
  REQUIRE(client.add_type(std::string(kAddressType), *decoder_for_type(kAddressType)).ok());
  REQUIRE(client.subscribe(kAddressType, {"*"}).ok());
  REQUIRE(client.start().ok());
  REQUIRE(server->ads.next_request().has_value());
  REQUIRE(server->ads.send(response(kAddressType, "n1",
                                    {address_resource(kA, "v1", ipv4(10, 0, 1, 1)),
                                     address_resource(kB, "v2", ipv4(10, 0, 1, 2))})));
  REQUIRE(server->ads.next_request().has_value());  // the ACK
  REQUIRE(client.connected());

  server.reset();  // the control plane goes away
  REQUIRE(eventually([&] { return !client.connected(); }));
  std::this_thread::sleep_for(100ms);  // some failed attempts against a closed port
  auto kept = client.snapshot();
  CHECK(kept->resources(kAddressType).size() == 2);
  CHECK(kept->find(kAddressType, kA)->version == "v1");

  token.write("secret-2");  // rotated while away: read again on reconnect
  server = std::make_unique<TestServer>(port);
  auto first = server->ads.next_request();
  REQUIRE(first.has_value());
  CHECK(first->type_url() == kAddressType);
  CHECK(first->node().id().starts_with("ztunnel~127.0.0.1~"));
  CHECK(versions_of(*first) == std::map<std::string, std::string>{{kA, "v1"}, {kB, "v2"}});
  CHECK(server->ads.header("authorization") == "Bearer secret-2");

  // The new server sends only the difference.
  REQUIRE(server->ads.send(response(kAddressType, "m1",
                                    {address_resource(kA, "v3", ipv4(10, 0, 1, 9))}, {kB})));
  auto ack = server->ads.next_request();
  REQUIRE(ack.has_value());
  CHECK(ack->response_nonce() == "m1");
  auto snap = client.snapshot();
  CHECK(snap->find(kAddressType, kA)->version == "v3");
  CHECK(snap->find(kAddressType, kB) == nullptr);
  CHECK(client.streams_started() >= 2);
  CHECK(metric_value(registry.render(), "ambit_xds_reconnects_total") >= 1);
  client.stop();
}

TEST_CASE("names subscribed at run time reach the server, and unsubscribing forgets them") {
  auto server = std::make_unique<TestServer>();
  TokenFile token("t");
  metrics::Registry registry;
  XdsClient client(test_config(server->port, token.path), registry);
  REQUIRE(client.add_type(std::string(kAddressType), *decoder_for_type(kAddressType)).ok());
  REQUIRE(client.add_type(std::string(kAuthorizationType), *decoder_for_type(kAuthorizationType)).ok());
  REQUIRE(client.subscribe(kAddressType, {"*"}).ok());
  Changes changes;
  client.on_change([&](const Change& c) { changes(c); });
  REQUIRE(client.start().ok());
  REQUIRE(server->ads.next_request().has_value());
  REQUIRE(server->ads.send(response(kAddressType, "n1", {})));
  REQUIRE(server->ads.next_request().has_value());
  REQUIRE(client.wait_ready(1s));

  REQUIRE(client.subscribe(kAuthorizationType, {"default/deny"}).ok());
  auto sub = server->ads.next_request();
  REQUIRE(sub.has_value());
  CHECK(sub->type_url() == kAuthorizationType);
  REQUIRE(sub->resource_names_subscribe_size() == 1);
  CHECK(sub->resource_names_subscribe(0) == "default/deny");
  CHECK_FALSE(client.ready());  // the new type has not answered yet
  CHECK(client.types_not_ready() == std::vector<std::string>{std::string(kAuthorizationType)});

  istio::security::Authorization az;
  az.set_name("deny");
  az.set_namespace_("default");
  az.set_action(istio::security::DENY);
  REQUIRE(server->ads.send(response(kAuthorizationType, "n2",
                                    {test::resource("default/deny", "1", az, kAuthorizationType)})));
  REQUIRE(server->ads.next_request().has_value());
  CHECK(client.wait_ready(5s));
  auto got = client.snapshot()->get<istio::security::Authorization>(kAuthorizationType, "default/deny");
  REQUIRE(got != nullptr);
  CHECK(got->action() == istio::security::DENY);

  REQUIRE(client.unsubscribe(kAuthorizationType, {"default/deny"}).ok());
  auto unsub = server->ads.next_request();
  REQUIRE(unsub.has_value());
  REQUIRE(unsub->resource_names_unsubscribe_size() == 1);
  CHECK(unsub->resource_names_unsubscribe(0) == "default/deny");
  CHECK(client.snapshot()->find(kAuthorizationType, "default/deny") == nullptr);
  REQUIRE(changes.size() == 2);
  CHECK(changes.at(1).removed == std::vector<std::string>{"default/deny"});
  client.stop();
}

namespace {

// A serving certificate for 127.0.0.1 signed by `ca`, as ambit-cp's carries an IP SAN per
// listen address.
std::pair<std::string, std::string> serving_cert(const tls::test_pki::TestCa& ca) {
  auto key = tls::generate_p256_key();
  REQUIRE(key.ok());
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
  X509_gmtime_adj(X509_getm_notBefore(x), -60);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key->get());
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("ambit-cp"), -1, -1, 0);
  X509_set_issuer_name(x, X509_get_subject_name(ca.cert.get()));
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, ca.cert.get(), x, nullptr, nullptr, 0);
  X509_EXTENSION* ext =
      X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "IP:127.0.0.1,DNS:ambit-cp");
  REQUIRE(ext != nullptr);
  X509_add_ext(x, ext, -1);
  X509_EXTENSION_free(ext);
  REQUIRE(X509_sign(x, ca.key.get(), EVP_sha256()) > 0);
  tls::X509Ptr cert(x);
  return {*tls::cert_to_pem(*cert), *tls::key_to_pem(**key)};
}

}  // namespace

TEST_CASE("over TLS the client trusts only the configured root") {
  auto ca = tls::test_pki::make_ca("Ambit Test CP Root");
  REQUIRE(ca.ok());
  auto [cert_pem, key_pem] = serving_cert(*ca);
  grpc::SslServerCredentialsOptions opts;
  opts.pem_key_cert_pairs.push_back({key_pem, cert_pem});
  TestServer server(0, grpc::SslServerCredentials(opts));
  TokenFile token("t");

  SUBCASE("the right root") {
    metrics::Registry registry;
    XdsConfig cfg = test_config(server.port, token.path);
    cfg.insecure = false;
    cfg.root_cert_pem = ca->cert_pem;
    XdsClient client(cfg, registry);
    REQUIRE(client.add_type(std::string(kAddressType), *decoder_for_type(kAddressType)).ok());
    REQUIRE(client.subscribe(kAddressType, {"*"}).ok());
    REQUIRE(client.start().ok());
    REQUIRE(server.ads.next_request().has_value());
    REQUIRE(server.ads.send(response(kAddressType, "n1", {address_resource(kA, "1", ipv4(10, 0, 1, 1))})));
    REQUIRE(client.wait_ready(5s));
    CHECK(client.snapshot()->find(kAddressType, kA) != nullptr);
    client.stop();
  }
  SUBCASE("another root: no stream, and a clear refusal to start without any root") {
    auto other = tls::test_pki::make_ca("Someone Else");
    REQUIRE(other.ok());
    metrics::Registry registry;
    XdsConfig cfg = test_config(server.port, token.path);
    cfg.insecure = false;
    cfg.root_cert_pem = other->cert_pem;
    XdsClient client(cfg, registry);
    REQUIRE(client.add_type(std::string(kAddressType), *decoder_for_type(kAddressType)).ok());
    REQUIRE(client.subscribe(kAddressType, {"*"}).ok());
    REQUIRE(client.start().ok());
    CHECK(eventually([&] { return client.streams_started() >= 3; }));  // retrying
    CHECK(server.ads.streams() == 0);
    CHECK_FALSE(client.ready());
    client.stop();

    cfg.root_cert_pem.clear();
    XdsClient unconfigured(cfg, registry);
    auto s = unconfigured.start();
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().message.find("no root certificate") != std::string::npos);
  }
}
