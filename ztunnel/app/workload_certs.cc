#include "ztunnel/app/workload_certs.h"

#include "common/base/log.h"

namespace ambit::ztunnel {

WorkloadCertificates::WorkloadCertificates(identity::CertificateManager& manager,
                                           std::string trust_domain)
    : manager_(manager), trust_domain_(std::move(trust_domain)) {
  subscription_ = manager_.subscribe([this](const identity::CertificatePtr& c) { installed(c); });
}

WorkloadCertificates::~WorkloadCertificates() { manager_.unsubscribe(subscription_); }

WorkloadCertificates::Delta WorkloadCertificates::set_wanted(
    const std::vector<tls::SpiffeId>& identities) {
  std::map<std::string, tls::SpiffeId> next;
  for (const auto& id : identities) next.emplace(id.to_string(), id);
  std::vector<tls::SpiffeId> added, dropped;
  {
    std::lock_guard lock(mu_);
    for (const auto& [uri, id] : next) {
      if (!wanted_.contains(uri)) added.push_back(id);
    }
    for (const auto& [uri, id] : wanted_) {
      if (!next.contains(uri)) {
        dropped.push_back(id);
        contexts_.erase(uri);
      }
    }
    wanted_ = std::move(next);
  }
  // Outside our lock: the manager may call installed() synchronously from another thread.
  if (!added.empty()) manager_.prefetch(added);
  for (const auto& id : dropped) manager_.forget(id);
  // A certificate the manager already held (an identity that came back) is installed now,
  // since no observer call will announce it again.
  for (const auto& id : added) {
    if (auto cert = manager_.current(id)) installed(cert);
  }
  return {added.size(), dropped.size()};
}

void WorkloadCertificates::installed(const identity::CertificatePtr& cert) {
  const std::string uri = cert->identity.to_string();
  std::shared_ptr<tls::TlsContext> existing;
  {
    std::lock_guard lock(mu_);
    if (!wanted_.contains(uri)) return;  // forgotten while the CA call ran
    auto it = contexts_.find(uri);
    if (it != contexts_.end()) existing = it->second;
  }
  auto logger = log::get("ztunnel");
  if (existing) {
    if (Status s = existing->rotate(cert->credentials); !s) {
      logger->error("certificate for {} could not be rotated in: {}", uri, s.error().to_string());
    } else {
      logger->info("certificate for {} rotated (serial {})", uri, cert->leaf.serial_hex);
    }
    return;
  }
  auto ctx = tls::TlsContext::create(cert->credentials, tls::IdentityPolicy::trust_domain(trust_domain_));
  if (!ctx) {
    logger->error("certificate for {} is unusable: {}", uri, ctx.error().to_string());
    return;
  }
  std::lock_guard lock(mu_);
  if (!wanted_.contains(uri)) return;
  contexts_.emplace(uri, std::move(*ctx));
  logger->info("certificate for {} installed (serial {})", uri, cert->leaf.serial_hex);
}

std::shared_ptr<tls::TlsContext> WorkloadCertificates::tls_for(const tls::SpiffeId& identity) const {
  std::lock_guard lock(mu_);
  auto it = contexts_.find(identity.to_string());
  return it == contexts_.end() ? nullptr : it->second;
}

std::vector<std::string> WorkloadCertificates::missing(const std::vector<tls::SpiffeId>& identities) const {
  std::vector<std::string> out;
  std::lock_guard lock(mu_);
  for (const auto& id : identities) {
    std::string uri = id.to_string();
    if (!contexts_.contains(uri)) out.push_back(std::move(uri));
  }
  return out;
}

}  // namespace ambit::ztunnel
