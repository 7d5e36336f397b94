#include "ztunnel/app/app_metrics.h"

namespace ambit::ztunnel {

Result<std::unique_ptr<AppMetrics>> AppMetrics::create(metrics::Registry& r) {
  std::unique_ptr<AppMetrics> m(new AppMetrics());
  auto counter = [&r](const char* name, const char* help, std::vector<std::string> labels,
                      metrics::Family<metrics::Counter>*& out) -> Status {
    auto f = r.counter(name, help, std::move(labels));
    if (!f) return f.take_error();
    out = *f;
    return {};
  };
  auto gauge = [&r](const char* name, const char* help, std::vector<std::string> labels,
                    metrics::Family<metrics::Gauge>*& out) -> Status {
    auto f = r.gauge(name, help, std::move(labels));
    if (!f) return f.take_error();
    out = *f;
    return {};
  };
  for (Status s : {
           counter("ambit_redirect_decisions_total",
                   "Redirect decisions of the in-pod eBPF programs, by reason", {"reason"},
                   m->redirect_decisions_),
           gauge("ambit_ztunnel_captured_pods", "Pods captured by this ztunnel now", {},
                 m->captured_pods_),
           counter("ambit_ztunnel_pod_captures_total", "Successful pod captures", {}, m->captures_),
           counter("ambit_ztunnel_pod_capture_failures_total", "Failed pod captures", {},
                   m->capture_failures_),
           counter("ambit_ztunnel_pod_releases_total", "Pods released", {}, m->releases_),
           counter("ambit_ztunnel_bpf_links_attached_total", "eBPF links attached to pods", {},
                   m->links_attached_),
           counter("ambit_ztunnel_bpf_links_detached_total", "eBPF links detached from pods", {},
                   m->links_detached_),
           gauge("ambit_ztunnel_certificates", "Workload certificates held, by state", {"state"},
                 m->certificates_),
           gauge("ambit_ztunnel_ready", "1 once ztunnel has its state and certificates", {},
                 m->ready_),
       }) {
    if (!s) return s.take_error();
  }
  return m;
}

void AppMetrics::advance(metrics::Counter& counter, uint64_t& last, uint64_t now) {
  if (now > last) counter.inc(now - last);
  if (now >= last) last = now;
}

void AppMetrics::refresh(const redirect::Enrollment& enrollment,
                         const std::vector<identity::CertificateStatus>& certificates, bool ready) {
  auto counters = enrollment.read();
  for (size_t i = 0; i < counters.by_reason.size(); ++i) {
    auto& series = redirect_decisions_->with({std::string(redirect::RedirectCounters::name(i))});
    advance(series, last_reasons_[i], counters.by_reason[i]);
  }
  auto st = enrollment.stats();
  captured_pods_->with({}).set(st.captured_pods);
  advance(captures_->with({}), last_captures_, st.captures);
  advance(capture_failures_->with({}), last_failures_, st.capture_failures);
  advance(releases_->with({}), last_releases_, st.releases);
  advance(links_attached_->with({}), last_attached_, st.links_attached);
  advance(links_detached_->with({}), last_detached_, st.links_detached);
  std::map<std::string, int64_t> by_state = {{"pending", 0}, {"available", 0}, {"failed", 0}};
  for (const auto& c : certificates) by_state[std::string(identity::cert_state_name(c.state))]++;
  for (const auto& [state, n] : by_state) certificates_->with({state}).set(n);
  ready_->with({}).set(ready ? 1 : 0);
}

}  // namespace ambit::ztunnel
