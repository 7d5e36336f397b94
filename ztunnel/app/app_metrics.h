// ztunnel's own metrics beside Istio's TCP families: redirect decisions by reason, capture
// counts, certificates by state and readiness. The sources (BPF counter maps, enrollment and
// certificate-manager stats) are read by the control thread each tick and mirrored here;
// monotonic sources become counters that advance by the difference.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "common/base/error.h"
#include "common/identity/certificate_manager.h"
#include "common/metrics/registry.h"
#include "ztunnel/redirect/enrollment.h"

namespace ambit::ztunnel {

class AppMetrics {
 public:
  static Result<std::unique_ptr<AppMetrics>> create(metrics::Registry& registry);

  void refresh(const redirect::Enrollment& enrollment,
               const std::vector<identity::CertificateStatus>& certificates, bool ready);

 private:
  AppMetrics() = default;
  // Advances `counter` to `now` (sources only grow; a smaller value is ignored).
  static void advance(metrics::Counter& counter, uint64_t& last, uint64_t now);

  metrics::Family<metrics::Counter>* redirect_decisions_ = nullptr;
  metrics::Family<metrics::Gauge>* captured_pods_ = nullptr;
  metrics::Family<metrics::Counter>* captures_ = nullptr;
  metrics::Family<metrics::Counter>* capture_failures_ = nullptr;
  metrics::Family<metrics::Counter>* releases_ = nullptr;
  metrics::Family<metrics::Counter>* links_attached_ = nullptr;
  metrics::Family<metrics::Counter>* links_detached_ = nullptr;
  metrics::Family<metrics::Gauge>* certificates_ = nullptr;
  metrics::Family<metrics::Gauge>* ready_ = nullptr;

  std::map<size_t, uint64_t> last_reasons_;
  uint64_t last_captures_ = 0, last_failures_ = 0, last_releases_ = 0;
  uint64_t last_attached_ = 0, last_detached_ = 0;
};

}  // namespace ambit::ztunnel
