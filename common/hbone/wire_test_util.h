// Test helpers: connect two codecs back to back in memory and record what their streams see.
#pragma once

#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/hbone/client_session.h"
#include "common/hbone/server_session.h"

namespace ambit::hbone::testing {

inline std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Moves what `from` wants to send into `to`. Returns the bytes moved.
template <class From, class To>
size_t transfer(From& from, To& to, std::vector<Error>* errors = nullptr) {
  auto out = from.pending_output();
  if (out.empty()) return 0;
  size_t n = out.size();
  Status s = to.receive(out);
  if (!s && errors != nullptr) errors->push_back(s.error());
  from.output_written(n);
  return n;
}

// Shuttles bytes both ways until both sides are quiet (bounded, so a livelock fails the test).
template <class A, class B>
size_t pump(A& a, B& b, std::vector<Error>* errors = nullptr) {
  size_t total = 0;
  for (int round = 0; round < 100000; ++round) {
    size_t moved = transfer(a, b, errors) + transfer(b, a, errors);
    if (moved == 0) return total;
    total += moved;
  }
  FAIL("pump did not settle");
  return total;
}

// Records every event of one stream.
struct Recorder : StreamHandler {
  Session* session = nullptr;
  int32_t id = 0;
  bool auto_consume = true;
  int status = 0;
  int responses = 0;
  std::string data;
  bool ended = false;
  bool closed = false;
  std::vector<uint32_t> resets;
  int writable_events = 0;

  void on_response(int s) override {
    status = s;
    ++responses;
  }
  void on_data(std::span<const std::byte> bytes) override {
    data.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (auto_consume) CHECK(session->consume(id, bytes.size()).ok());
  }
  void on_end_of_stream() override {
    CHECK_FALSE(closed);
    ended = true;
  }
  void on_reset(uint32_t code) override { resets.push_back(code); }
  void on_writable() override { ++writable_events; }
  void on_closed() override {
    CHECK_FALSE(closed);  // exactly once
    closed = true;
  }
};

// A server owner that records requests and answers as told.
struct Owner : ServerHandler {
  enum class Answer { later, accept_now, refuse_now, no_handler };
  Answer answer = Answer::later;
  int refuse_status = 503;
  ServerSession* server = nullptr;
  bool auto_consume = true;

  struct Seen {
    int32_t id;
    ConnectRequest request;
    Authority target;
  };
  std::vector<Seen> connects;
  std::vector<std::pair<int32_t, RejectedConnect>> rejected;
  std::map<int32_t, std::unique_ptr<Recorder>> streams;

  StreamHandler* on_connect(int32_t id, const ConnectRequest& request,
                            const Authority& target) override {
    connects.push_back({id, request, target});
    if (answer == Answer::no_handler) return nullptr;
    auto r = std::make_unique<Recorder>();
    r->session = server;
    r->id = id;
    r->auto_consume = auto_consume;
    if (answer == Answer::accept_now) CHECK(server->accept(id).ok());
    if (answer == Answer::refuse_now) CHECK(server->refuse(id, refuse_status).ok());
    Recorder* raw = r.get();
    streams[id] = std::move(r);
    return raw;
  }
  void on_rejected(int32_t id, const RejectedConnect& r) override { rejected.emplace_back(id, r); }
};

// A client and a server wired together.
struct Wire {
  Owner owner;
  ClientSession client;
  ServerSession server;

  explicit Wire(SessionOptions client_opts = {}, SessionOptions server_opts = server_session_options())
      : client(client_opts), server(owner, server_opts) {
    owner.server = &server;
  }
  size_t pump(std::vector<Error>* errors = nullptr) { return testing::pump(client, server, errors); }

  // Opens a stream with a recorder; the recorder is owned by the caller.
  int32_t open(Recorder& r, std::string authority = "10.0.0.5:8080",
               std::vector<Header> headers = {}) {
    auto id = client.open(ConnectRequest{std::move(authority), std::move(headers)}, &r);
    REQUIRE(id.ok());
    r.session = &client;
    r.id = *id;
    return *id;
  }
};

}  // namespace ambit::hbone::testing
