// ambit-cp's state directory: the mesh root CA (created once, reused on every start so that
// restarts keep trust), the serving certificate for its gRPC listeners (reissued at each start,
// since the listen addresses may change), and the token directory.
//
//   <state-dir>/root-key.pem      the root's private key, 0600
//   <state-dir>/root-cert.pem     the trust anchor clients load
//   <state-dir>/serving-cert.pem  leaf for the listeners: DNS ambit-cp, istiod.istio-system.svc,
//   <state-dir>/serving-key.pem   and an IP SAN per listen address (0600)
//   <state-dir>/tokens/           see token_store.h
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/base/error.h"
#include "common/tls/x509.h"
#include "tools/ambit-cp/config.h"

namespace ambit::cp {

struct RootCa {
  tls::PKeyPtr key;
  tls::X509Ptr cert;
  std::string cert_pem;
  bool created = false;  // false: loaded from an earlier start
};

// Loads the root from the state directory, or creates it when neither file exists. A
// directory holding only one of the two files is refused (something removed the other).
Result<RootCa> load_or_create_root(const std::filesystem::path& state_dir,
                                   const std::string& trust_domain);

struct ServingCredentials {
  std::string key_pem;
  std::string cert_pem;
};

// The DNS names every serving certificate carries.
const std::vector<std::string>& serving_dns_names();

// The IP SANs for a set of listen addresses. An unspecified address (0.0.0.0, ::) adds the
// loopback address of its family, since that is how a local client reaches it.
std::vector<std::string> serving_ips(const std::vector<ListenAddress>& listen);

// Issues a fresh serving certificate (P-256, one year, serverAuth) signed by the root.
Result<ServingCredentials> issue_serving_certificate(const RootCa& root,
                                                     const std::vector<ListenAddress>& listen);

// Writes `content` to `path` through a temporary file and a rename, with the given mode.
Status write_file_atomically(const std::filesystem::path& path, const std::string& content,
                             unsigned mode);

}  // namespace ambit::cp
