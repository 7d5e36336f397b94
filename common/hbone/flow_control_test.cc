// Flow control end to end: a receiver that does not consume stalls the sender at the window,
// and bulk transfers keep every buffer bounded.
#include <doctest/doctest.h>

#include <algorithm>

#include "common/hbone/wire_test_util.h"

namespace ambit::hbone {
namespace {

using namespace testing;

constexpr size_t kMiB = 1u << 20;

// A deterministic byte stream whose every position matters to the checksum.
struct Pattern {
  size_t offset = 0;
  void fill(std::vector<std::byte>& buf, size_t n) {
    buf.resize(n);
    for (size_t i = 0; i < n; ++i, ++offset) {
      buf[i] = static_cast<std::byte>((offset * 2654435761u) >> 13);
    }
  }
};

struct Fnv1a {
  uint64_t h = 14695981039346656037ull;
  void add(std::span<const std::byte> b) {
    for (std::byte c : b) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  }
};

// Counts and checksums instead of storing 64 MiB.
struct Sink : StreamHandler {
  Session* session = nullptr;
  int32_t id = 0;
  bool consume_now = false;
  size_t received = 0;
  size_t max_unconsumed = 0;
  Fnv1a sum;
  bool ended = false;
  bool closed = false;
  void on_data(std::span<const std::byte> b) override {
    received += b.size();
    sum.add(b);
    if (consume_now) CHECK(session->consume(id, b.size()).ok());
    max_unconsumed = std::max(max_unconsumed, session->unconsumed(id));
  }
  void on_end_of_stream() override { ended = true; }
  void on_closed() override { closed = true; }
};

struct SinkOwner : ServerHandler {
  ServerSession* server = nullptr;
  std::map<int32_t, std::unique_ptr<Sink>> sinks;
  StreamHandler* on_connect(int32_t id, const ConnectRequest&, const Authority&) override {
    auto s = std::make_unique<Sink>();
    s->session = server;
    s->id = id;
    CHECK(server->accept(id).ok());
    Sink* raw = s.get();
    sinks[id] = std::move(s);
    return raw;
  }
};

struct BulkWire {
  SinkOwner owner;
  ClientSession client;
  ServerSession server{owner};
  BulkWire() { owner.server = &server; }
};

struct Quiet : StreamHandler {
  void on_data(std::span<const std::byte>) override {}
};

TEST_CASE("64 MiB through one stream: stall at the 4 MiB window, then full delivery") {
  BulkWire w;
  Quiet quiet;
  auto opened = w.client.open({"10.0.0.5:8080", {}}, &quiet);
  REQUIRE(opened.ok());
  const int32_t id = *opened;
  const size_t total = 64 * kMiB;
  const SessionOptions defaults;
  const size_t output_bound = defaults.output_high_water + 16384 + 9 + 4096;  // + one frame + control

  Pattern pattern;
  Fnv1a sent_sum;
  size_t sent = 0;
  std::vector<std::byte> chunk;
  size_t max_buffered = 0, max_output = 0;

  // One round: the writer fills what the codec accepts, then the network moves all it can.
  auto round = [&]() -> size_t {
    size_t moved = 0;
    while (sent < total) {
      size_t room = w.client.writable(id);
      if (room == 0) break;
      size_t n = std::min({room, total - sent, size_t(64 * 1024)});
      pattern.fill(chunk, n);
      auto took = w.client.write(id, chunk);
      REQUIRE(took.ok());
      REQUIRE(*took == n);
      sent_sum.add(chunk);
      sent += n;
      moved += n;
      if (sent == total) REQUIRE(w.client.close_write(id).ok());
    }
    max_buffered = std::max(max_buffered, w.client.buffered(id));
    auto out = w.client.pending_output();
    max_output = std::max(max_output, out.size());
    moved += transfer(w.client, w.server) + transfer(w.server, w.client);
    return moved;
  };

  // Phase 1: the receiver holds everything (its socket is "blocked").
  for (int i = 0; i < 10000 && round() > 0; ++i) {
  }
  REQUIRE(w.owner.sinks.count(id) == 1);
  Sink& sink = *w.owner.sinks.at(id);
  CHECK(sink.received == 4 * kMiB);  // exactly the stream window, not a byte more in flight
  CHECK(w.server.unconsumed(id) == 4 * kMiB);
  CHECK(w.client.writable(id) == 0);
  const size_t stalled_buffer = w.client.buffered(id);
  CHECK(stalled_buffer == defaults.stream_send_limit);
  CHECK(round() == 0);  // still stuck: nothing drains without consumption
  CHECK(w.client.buffered(id) == stalled_buffer);

  // Phase 2: the receiver consumes as it reads.
  REQUIRE(w.server.consume(id, w.server.unconsumed(id)).ok());
  sink.consume_now = true;
  for (int i = 0; i < 100000 && !sink.ended; ++i) round();
  CHECK(sent == total);
  CHECK(sink.received == total);
  CHECK(sink.ended);
  CHECK(sink.sum.h == sent_sum.h);
  CHECK(sink.max_unconsumed <= 4 * kMiB);
  CHECK(max_buffered <= defaults.stream_send_limit);
  CHECK(max_output <= output_bound);
}

TEST_CASE("the 16 MiB connection window caps all streams together") {
  BulkWire w;
  std::vector<Quiet> handlers(5);
  std::vector<int32_t> ids;
  for (auto& h : handlers) {
    auto id = w.client.open({"10.0.0.5:8080", {}}, &h);
    REQUIRE(id.ok());
    ids.push_back(*id);
  }
  std::vector<std::byte> chunk(64 * 1024, std::byte{0x5a});
  for (int i = 0; i < 10000; ++i) {
    size_t moved = 0;
    for (int32_t id : ids) {
      while (w.client.writable(id) > 0) {
        auto took = w.client.write(id, std::span(chunk).first(std::min(chunk.size(), w.client.writable(id))));
        REQUIRE(took.ok());
        moved += *took;
      }
    }
    moved += transfer(w.client, w.server) + transfer(w.server, w.client);
    if (moved == 0) break;
  }
  size_t total = 0;
  for (auto& [id, sink] : w.owner.sinks) {
    CHECK(sink->received <= 4 * kMiB);
    total += sink->received;
  }
  CHECK(total == 16 * kMiB);

  // Streams that die with unconsumed bytes give their connection window back.
  for (int i = 0; i < 4; ++i) REQUIRE(w.server.reset(ids[i], kCancel).ok());
  pump(w.client, w.server);
  for (int i = 0; i < 1000; ++i) {
    size_t moved = 0;
    if (w.client.writable(ids[4]) > 0) {
      auto took = w.client.write(ids[4], std::span(chunk).first(std::min(chunk.size(), w.client.writable(ids[4]))));
      REQUIRE(took.ok());
      moved += *took;
    }
    moved += transfer(w.client, w.server) + transfer(w.server, w.client);
    if (moved == 0) break;
  }
  CHECK(w.owner.sinks.at(ids[4])->received == 4 * kMiB);
}

TEST_CASE("write() accepts only up to the send limit and signals when there is room again") {
  SessionOptions small;
  small.stream_send_limit = 64 * 1024;
  Owner owner;
  ClientSession client(small);
  ServerSession server(owner);
  owner.server = &server;
  owner.answer = Owner::Answer::accept_now;
  Recorder r;
  auto id = client.open({"10.0.0.5:8080", {}}, &r);
  REQUIRE(id.ok());
  r.session = &client;
  r.id = *id;
  std::vector<std::byte> big(100 * 1024, std::byte{1});
  auto took = client.write(*id, big);
  REQUIRE(took.ok());
  CHECK(*took == 64 * 1024);
  CHECK(client.writable(*id) == 0);
  CHECK(r.writable_events == 0);
  pump(client, server);
  CHECK(r.writable_events >= 1);
  CHECK(client.buffered(*id) == 0);
  CHECK(owner.streams.at(*id)->data.size() == 64 * 1024);
}

}  // namespace
}  // namespace ambit::hbone
