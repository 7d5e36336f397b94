#include "tools/ambit-xds/printer.h"

#include <doctest/doctest.h>

#include <memory>

#include "common/proto/workload.pb.h"

using namespace ambit;
using namespace ambit::xds_cli;

TEST_CASE("a resource prints as one JSON object with the protobuf JSON inside") {
  auto a = std::make_shared<istio::workload::Address>();
  auto* w = a->mutable_workload();
  w->set_uid("Kubernetes//v1/Pod/default/echo-0");
  w->set_name("echo-0");
  w->add_addresses(std::string("\x0a\x00\x01\x05", 4));
  w->set_tunnel_protocol(istio::workload::HBONE);
  xds::Resource r{"v\"1", a};
  auto line = resource_json(xds::kAddressType, "Kubernetes//v1/Pod/default/echo-0", r);
  REQUIRE(line.ok());
  CHECK(*line ==
        "{\"type\":\"type.googleapis.com/istio.workload.Address\","
        "\"name\":\"Kubernetes//v1/Pod/default/echo-0\",\"version\":\"v\\\"1\","
        "\"resource\":{\"workload\":{\"name\":\"echo-0\",\"addresses\":[\"CgABBQ==\"],"
        "\"tunnelProtocol\":\"HBONE\",\"uid\":\"Kubernetes//v1/Pod/default/echo-0\"}}}");
  CHECK(line->find('\n') == std::string::npos);
  CHECK(removed_json(xds::kAddressType, "x") ==
        "{\"type\":\"type.googleapis.com/istio.workload.Address\",\"name\":\"x\",\"removed\":true}");
  CHECK(resource_text(xds::kAddressType, "n", r) == "UPDATE istio.workload.Address n v\"1");
  CHECK(removed_text(xds::kAuthorizationType, "ns/p") == "REMOVE istio.security.Authorization ns/p");
}
