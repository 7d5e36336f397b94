// CaClient over Istio's CA protocol: istio.v1.auth.IstioCertificateService/CreateCertificate,
// gRPC over TLS to istiod or ambit-cp (port 15012). Each call sends a fresh CSR for the
// caller's key, `authorization: Bearer <token>` read from a file at that moment (projected
// service-account tokens and ambit-cp's node tokens are replaced on disk while we run), and
// `clusterid`. A node proxy asking for a local pod's identity names it in the request's
// metadata as ImpersonatedIdentity, which the CA honours only for pods on the caller's node.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "common/base/error.h"
#include "common/identity/ca_client.h"
#include "common/identity/clock.h"

namespace ambit::identity {

struct GrpcCaOptions {
  std::string address;        // "host:port" of the CA, e.g. "istiod.istio-system.svc:15012"
  std::string root_cert_pem;  // trust anchor(s) for the CA's serving certificate
  // Name checked in the CA's serving certificate when it differs from the host in `address`
  // (dialing ambit-cp by IP, whose certificate names "istiod.istio-system.svc"). Empty: the
  // host of `address`.
  std::string tls_server_name;
  std::string token_path;  // bearer token file, re-read on every call; empty: send no token
  std::string cluster_id = "Kubernetes";
  // The caller's own identity. Requests for any other identity carry ImpersonatedIdentity.
  // Unset (a ztunnel, which only ever asks on behalf of pods): every request carries it.
  std::optional<tls::SpiffeId> own_identity;
  std::chrono::seconds validity = std::chrono::hours(24);  // asked for; the CA may shorten it
  std::chrono::milliseconds timeout = std::chrono::seconds(10);  // per call
};

class GrpcCaClient final : public CaClient {
 public:
  // Errc::config when the options cannot work (no address, no root certificate).
  // `clock` must outlive the client; answers are vetted at clock.now().
  static Result<std::unique_ptr<GrpcCaClient>> create(GrpcCaOptions opts, const Clock& clock);
  ~GrpcCaClient() override;

  // gRPC failures map to named codes: unavailable (CA unreachable), timeout,
  // policy_denied (UNAUTHENTICATED / PERMISSION_DENIED: the token or the identity was
  // refused), invalid_argument (the CA rejected the CSR), protocol; the message carries the
  // CA's address and its own explanation.
  Result<IssuedCertificate> fetch(const tls::SpiffeId& identity, const EVP_PKEY& key) override;

  GrpcCaClient(const GrpcCaClient&) = delete;
  GrpcCaClient& operator=(const GrpcCaClient&) = delete;

 private:
  struct Impl;
  explicit GrpcCaClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ambit::identity
