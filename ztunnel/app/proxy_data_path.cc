// DataPath over ztunnel/proxy's Proxy facade.
#include "ztunnel/app/data_path.h"

namespace ambit::ztunnel {
namespace {

using nlohmann::json;

class ProxyDataPath final : public DataPath {
 public:
  explicit ProxyDataPath(std::unique_ptr<Proxy> proxy) : proxy_(std::move(proxy)) {}

  Status start_pod(std::shared_ptr<const redirect::CapturedPod> pod) override {
    return proxy_->start_pod(std::move(pod));
  }
  void stop_pod(const std::string& key) override { proxy_->stop_pod(key); }
  size_t recheck_policies() override { return proxy_->recheck_policies(); }

  json connections() const override {
    json out = json::array();
    for (const auto& c : proxy_->connections()) {
      out.push_back({{"direction", connection_direction_name(c.direction)},
                     {"pod", c.pod},
                     {"src", c.src},
                     {"dst", c.dst},
                     {"hboneAddr", c.hbone_authority},
                     {"srcIdentity", c.src_identity},
                     {"dstIdentity", c.dst_identity},
                     {"state", c.state},
                     {"bytesSent", c.bytes_sent},
                     {"bytesRecv", c.bytes_received},
                     {"ageMs", c.age.count()},
                     {"worker", c.worker}});
    }
    return out;
  }

  json stats() const override {
    ProxyStats s = proxy_->stats();
    return {{"accepted", s.accepted},   {"refused", s.refused},
            {"closedByPolicy", s.closed_by_policy}, {"active", s.active},
            {"pods", s.pods}};
  }

 private:
  std::unique_ptr<Proxy> proxy_;
};

}  // namespace

Result<std::unique_ptr<DataPath>> make_proxy_data_path(io::WorkerPool& workers,
                                                       std::shared_ptr<const ProxyContext> ctx) {
  auto proxy = Proxy::create(workers, std::move(ctx));
  if (!proxy) return proxy.take_error();
  return std::unique_ptr<DataPath>(std::make_unique<ProxyDataPath>(std::move(*proxy)));
}

}  // namespace ambit::ztunnel
