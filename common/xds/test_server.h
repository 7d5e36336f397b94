// An in-process ADS server for tests on 127.0.0.1: it records every request and header the
// client sends and writes whatever responses the test scripts, one stream at a time.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <doctest/doctest.h>

#include "common/proto/ads.grpc.pb.h"

namespace ambit::xds::test {

using envoy::service::discovery::v3::AggregatedDiscoveryService;
using envoy::service::discovery::v3::DeltaDiscoveryRequest;
using envoy::service::discovery::v3::DeltaDiscoveryResponse;

// The scripted control plane: one stream at a time; the test sends responses and reads the
// requests the client made, in order.
class FakeAds final : public AggregatedDiscoveryService::Service {
 public:
  using Stream = grpc::ServerReaderWriter<DeltaDiscoveryResponse, DeltaDiscoveryRequest>;

  grpc::Status DeltaAggregatedResources(grpc::ServerContext* ctx, Stream* stream) override {
    {
      std::lock_guard lock(mu_);
      stream_ = stream;
      ++streams_;
      headers_.clear();
      for (const auto& [k, v] : ctx->client_metadata()) {
        headers_[std::string(k.data(), k.size())] = std::string(v.data(), v.size());
      }
      cv_.notify_all();
    }
    DeltaDiscoveryRequest req;
    while (stream->Read(&req)) {
      std::lock_guard lock(mu_);
      requests_.push_back(req);
      cv_.notify_all();
    }
    std::lock_guard lock(mu_);
    stream_ = nullptr;
    return grpc::Status::OK;
  }

  bool send(const DeltaDiscoveryResponse& resp) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(5), [&] { return stream_ != nullptr; })) return false;
    return stream_->Write(resp);
  }

  std::optional<DeltaDiscoveryRequest> next_request(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, timeout, [&] { return !requests_.empty(); })) return std::nullopt;
    auto r = std::move(requests_.front());
    requests_.pop_front();
    return r;
  }

  std::string header(const std::string& name) {
    std::lock_guard lock(mu_);
    auto it = headers_.find(name);
    return it == headers_.end() ? std::string() : it->second;
  }

  int streams() {
    std::lock_guard lock(mu_);
    return streams_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  Stream* stream_ = nullptr;
  int streams_ = 0;
  std::map<std::string, std::string> headers_;
  std::deque<DeltaDiscoveryRequest> requests_;
};

struct TestServer {
  FakeAds ads;
  std::unique_ptr<grpc::Server> server;
  int port = 0;

  explicit TestServer(int want_port = 0,
                      std::shared_ptr<grpc::ServerCredentials> creds =
                          grpc::InsecureServerCredentials()) {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:" + std::to_string(want_port), creds, &port);
    b.RegisterService(&ads);
    server = b.BuildAndStart();
    REQUIRE(server != nullptr);
    REQUIRE(port > 0);
  }
  ~TestServer() { server->Shutdown(std::chrono::system_clock::now()); }
};

}  // namespace ambit::xds::test
