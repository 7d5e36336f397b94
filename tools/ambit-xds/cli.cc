#include "tools/ambit-xds/cli.h"

#include <fstream>
#include <sstream>

#include "common/base/log.h"
#include "tools/ambit-xds/printer.h"

namespace ambit::xds_cli {
namespace {

void write_resource(const Config& cfg, const LineSink& out, const std::string& type_url,
                    const std::string& name, const xds::Resource& r) {
  if (!cfg.json) {
    out(resource_text(type_url, name, r));
    return;
  }
  auto line = resource_json(type_url, name, r);
  if (line) {
    out(*line);
  } else {
    log::get("xds")->error("{}", line.error().message);
  }
}

}  // namespace

Result<xds::XdsConfig> client_config(const Config& cfg) {
  xds::XdsConfig xc;
  xc.address = cfg.address;
  xc.insecure = cfg.insecure;
  xc.tls_server_name = cfg.server_name;
  xc.token_file = cfg.token_file;
  xc.cluster_id = cfg.cluster_id;
  xc.node = xds::make_node(cfg.node_id, cfg.node_metadata);
  if (!cfg.insecure) {
    std::ifstream in(cfg.root_cert_file);
    if (!in) return make_error(Errc::config, "cannot read the root certificate " + cfg.root_cert_file);
    std::ostringstream pem;
    pem << in.rdbuf();
    xc.root_cert_pem = pem.str();
    if (xc.root_cert_pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      return make_error(Errc::config, cfg.root_cert_file + " holds no PEM certificate");
    }
  }
  return xc;
}

Status subscribe_all(xds::XdsClient& client, const Config& cfg, LineSink out) {
  for (const auto& t : cfg.types) {
    auto decoder = xds::decoder_for_type(t);
    if (!decoder) return decoder.take_error();
    if (Status s = client.add_type(t, std::move(*decoder)); !s) return s;
    if (Status s = client.subscribe(t, {std::string(xds::kWildcard)}); !s) return s;
  }
  if (cfg.once) return {};
  client.on_change([cfg, out = std::move(out)](const xds::Change& c) {
    for (const auto& name : c.updated) {
      if (const auto* r = c.snapshot->find(c.type_url, name)) write_resource(cfg, out, c.type_url, name, *r);
    }
    for (const auto& name : c.removed) {
      out(cfg.json ? removed_json(c.type_url, name) : removed_text(c.type_url, name));
    }
  });
  return {};
}

Status print_first_full_state(xds::XdsClient& client, const Config& cfg, const LineSink& out) {
  if (!client.wait_ready(cfg.timeout)) {
    std::string missing;
    for (const auto& t : client.types_not_ready()) missing += " " + t;
    return make_error(Errc::timeout, "no full state from " + cfg.address + " within " +
                                         std::to_string(cfg.timeout.count()) + "s for:" + missing);
  }
  auto snap = client.snapshot();
  for (const auto& t : cfg.types) {
    for (const auto& [name, r] : snap->resources(t)) write_resource(cfg, out, t, name, r);
  }
  return {};
}

}  // namespace ambit::xds_cli
