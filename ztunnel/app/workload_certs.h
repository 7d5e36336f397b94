// The certificates of the workloads this ztunnel captures, as the data path uses them: one
// TlsContext per local identity, created when the identity's first certificate arrives and
// rotated in place afterwards (live connections keep theirs).
//
// Identities are reference counted by the capture plan: set_wanted() prefetches the new
// ones and forgets those whose last pod left, so the CA is asked only for identities of pods
// on this node and nothing lingers after they go.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/identity/certificate_manager.h"
#include "common/tls/context.h"
#include "common/tls/spiffe.h"

namespace ambit::ztunnel {

class WorkloadCertificates {
 public:
  // `manager` must outlive this object. Inbound TLS accepts clients of `trust_domain` only.
  WorkloadCertificates(identity::CertificateManager& manager, std::string trust_domain);
  ~WorkloadCertificates();
  WorkloadCertificates(const WorkloadCertificates&) = delete;
  WorkloadCertificates& operator=(const WorkloadCertificates&) = delete;

  // The identities needed now; returns how many were added and dropped.
  struct Delta {
    size_t added = 0, dropped = 0;
  };
  Delta set_wanted(const std::vector<tls::SpiffeId>& identities);

  // The context for a local identity, or null while its certificate is pending (or when it
  // is not one of ours: a captured pod never borrows another's identity). Any thread.
  std::shared_ptr<tls::TlsContext> tls_for(const tls::SpiffeId& identity) const;

  // Of `identities`, those without a usable certificate, as URIs (readiness says which).
  std::vector<std::string> missing(const std::vector<tls::SpiffeId>& identities) const;

 private:
  void installed(const identity::CertificatePtr& cert);

  identity::CertificateManager& manager_;
  const std::string trust_domain_;
  uint64_t subscription_ = 0;
  mutable std::mutex mu_;
  std::map<std::string, tls::SpiffeId> wanted_;                  // by URI
  std::map<std::string, std::shared_ptr<tls::TlsContext>> contexts_;  // by URI
};

}  // namespace ambit::ztunnel
