// Client and server codecs talking to each other (and to a raw nghttp2 peer) in memory.
#include <doctest/doctest.h>

#include "common/hbone/headers.h"
#include "common/hbone/wire_test_util.h"

namespace ambit::hbone {
namespace {

using namespace testing;
using std::chrono::seconds;

// A bare nghttp2 client that can send requests our ClientSession refuses to build.
class RawClient {
 public:
  RawClient() {
    nghttp2_session_callbacks* cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    nghttp2_session_client_new(&ng_, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~RawClient() { nghttp2_session_del(ng_); }

  int32_t request(std::vector<std::pair<std::string, std::string>> headers) {
    std::vector<nghttp2_nv> nva;
    for (auto& [n, v] : headers) {
      nva.push_back({reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()),
                     n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    return nghttp2_submit_request(ng_, nullptr, nva.data(), nva.size(), nullptr, nullptr);
  }

  std::span<const std::byte> pending_output() {
    out_.clear();
    for (;;) {
      const uint8_t* data;
      ssize_t n = nghttp2_session_mem_send(ng_, &data);
      if (n <= 0) break;
      out_.insert(out_.end(), reinterpret_cast<const std::byte*>(data),
                  reinterpret_cast<const std::byte*>(data) + n);
    }
    return out_;
  }
  void output_written(size_t) { out_.clear(); }
  Status receive(std::span<const std::byte> b) {
    ssize_t n = nghttp2_session_mem_recv(ng_, reinterpret_cast<const uint8_t*>(b.data()), b.size());
    if (n < 0) return make_error(Errc::protocol, nghttp2_strerror(int(n)));
    return {};
  }

  std::map<int32_t, int> status;
  std::map<int32_t, uint32_t> close_code;

 private:
  static int on_header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name, size_t nl,
                       const uint8_t* value, size_t vl, uint8_t, void* u) {
    if (std::string_view(reinterpret_cast<const char*>(name), nl) == ":status") {
      static_cast<RawClient*>(u)->status[f->hd.stream_id] =
          std::stoi(std::string(reinterpret_cast<const char*>(value), vl));
    }
    return 0;
  }
  static int on_close(nghttp2_session*, int32_t id, uint32_t code, void* u) {
    static_cast<RawClient*>(u)->close_code[id] = code;
    return 0;
  }

  nghttp2_session* ng_ = nullptr;
  std::vector<std::byte> out_;
};

class FixedRandom final : public RandomSource {
 public:
  uint64_t next_u64() override { return ++n_ * 0x0101010101010101ULL; }

 private:
  uint64_t n_ = 0;
};

TEST_CASE("CONNECT round trip: headers, 200, data both ways, independent half-closes") {
  Wire w;
  FixedRandom random;
  const std::vector<Header> headers = {
      {"baggage", build_baggage({"c1", "default", "deployment", "sleep", "sleep", "v1"})},
      {"forwarded", build_forwarded("10.0.0.9", 40000)},
      {"traceparent", build_traceparent(new_trace(random))},
  };
  Recorder c;
  int32_t id = w.open(c, "10.0.0.5:8080", headers);
  CHECK(id == 1);
  // Bytes written before the 200 wait in the client.
  REQUIRE(w.client.write(id, as_bytes("early ")).ok());
  w.pump();

  REQUIRE(w.owner.connects.size() == 1);
  const auto& seen = w.owner.connects[0];
  CHECK(seen.request.authority == "10.0.0.5:8080");
  CHECK(seen.target.host == "10.0.0.5");
  CHECK(seen.target.port == 8080);
  CHECK(seen.request.headers == headers);
  REQUIRE(seen.request.find("forwarded") != nullptr);
  CHECK(*seen.request.find("forwarded") == "for=\"10.0.0.9:40000\"");
  Recorder& s = *w.owner.streams.at(id);
  CHECK(s.data.empty());
  CHECK(c.status == 0);
  CHECK(w.client.buffered(id) == 6);

  REQUIRE(w.server.accept(id).ok());
  w.pump();
  CHECK(c.status == 200);
  CHECK(c.responses == 1);
  CHECK(s.data == "early ");

  REQUIRE(w.client.write(id, as_bytes("ping")).ok());
  REQUIRE(w.server.write(id, as_bytes("pong")).ok());
  w.pump();
  CHECK(s.data == "early ping");
  CHECK(c.data == "pong");

  // The client half-closes; the server still talks.
  REQUIRE(w.client.close_write(id).ok());
  w.pump();
  CHECK(s.ended);
  CHECK_FALSE(c.ended);
  CHECK_FALSE(w.client.write(id, as_bytes("x")).ok());
  REQUIRE(w.server.write(id, as_bytes(" after")).ok());
  w.pump();
  CHECK(c.data == "pong after");
  CHECK_FALSE(c.closed);

  REQUIRE(w.server.close_write(id).ok());
  w.pump();
  CHECK(c.ended);
  CHECK(c.closed);
  CHECK(s.closed);
  CHECK(c.resets.empty());
  CHECK(s.resets.empty());
  CHECK(w.client.active_streams() == 0);
  CHECK(w.server.active_streams() == 0);
  CHECK_FALSE(w.client.is_dead());
  CHECK_FALSE(w.server.is_dead());
}

TEST_CASE("the server half-closes first and the client keeps sending") {
  Wire w;
  w.owner.answer = Owner::Answer::accept_now;
  Recorder c;
  int32_t id = w.open(c, "[fd00::5]:9080");
  w.pump();
  REQUIRE(c.status == 200);
  CHECK(w.owner.connects[0].target.kind == Authority::Kind::ipv6);
  REQUIRE(w.server.close_write(id).ok());
  w.pump();
  CHECK(c.ended);
  REQUIRE(w.client.write(id, as_bytes("still here")).ok());
  w.pump();
  CHECK(w.owner.streams.at(id)->data == "still here");
  REQUIRE(w.client.close_write(id).ok());
  w.pump();
  CHECK(c.closed);
  CHECK(c.resets.empty());
}

TEST_CASE("refuse(503) and refuse(401) reach the client as statuses") {
  Wire w;
  w.owner.answer = Owner::Answer::refuse_now;
  w.owner.refuse_status = 503;
  Recorder a, b;
  int32_t ida = w.open(a);
  w.pump();
  CHECK(a.status == 503);
  CHECK(a.closed);
  CHECK(a.resets.empty());  // a refusal is not a reset
  CHECK_FALSE(a.ended);

  w.owner.answer = Owner::Answer::later;
  int32_t idb = w.open(b, "10.0.0.6:80");
  REQUIRE(w.client.write(idb, as_bytes("never delivered")).ok());
  w.pump();
  REQUIRE(w.server.refuse(idb, 401).ok());
  CHECK_FALSE(w.server.accept(idb).ok());  // answered once only
  w.pump();
  CHECK(b.status == 401);
  CHECK(b.closed);
  CHECK(w.owner.streams.at(idb)->data.empty());
  CHECK(w.owner.streams.at(idb)->closed);
  CHECK(w.client.active_streams() == 0);
  CHECK(w.server.active_streams() == 0);
  CHECK(ida != idb);
  CHECK_FALSE(w.server.refuse(idb, 200).ok());
}

TEST_CASE("an owner that returns no handler refuses with 503") {
  Wire w;
  w.owner.answer = Owner::Answer::no_handler;
  Recorder c;
  w.open(c);
  w.pump();
  CHECK(c.status == 503);
  CHECK(c.closed);
}

TEST_CASE("the codec answers 400 itself: proxy port, GET, bad authority") {
  SUBCASE("target port 15008 from our client") {
    Wire w;
    Recorder c;
    int32_t id = w.open(c, "10.0.0.5:15008");
    w.pump();
    CHECK(c.status == 400);
    CHECK(c.closed);
    CHECK(w.owner.connects.empty());
    REQUIRE(w.owner.rejected.size() == 1);
    CHECK(w.owner.rejected[0].first == id);
    CHECK(w.owner.rejected[0].second.reason == RejectReason::proxy_port);
    CHECK(w.owner.rejected[0].second.request.authority == "10.0.0.5:15008");
  }

  struct Row {
    const char* name;
    std::vector<std::pair<std::string, std::string>> headers;
    int status;  // 0 = reset instead of answered
    RejectReason reason;
  };
  const Row rows[] = {
      {"GET",
       {{":method", "GET"}, {":scheme", "https"}, {":path", "/"}, {":authority", "10.0.0.5:80"}},
       400,
       RejectReason::not_connect},
      {"bad authority", {{":method", "CONNECT"}, {":authority", "10.0.0.5"}}, 400,
       RejectReason::bad_authority},
      {"host name without port", {{":method", "CONNECT"}, {":authority", "reviews"}}, 400,
       RejectReason::bad_authority},
      {"path in authority (nghttp2 resets it)", {{":method", "CONNECT"}, {":authority", "a:1/x"}},
       0, RejectReason::malformed},
      {"port 15001", {{":method", "CONNECT"}, {":authority", "10.0.0.5:15001"}}, 400,
       RejectReason::proxy_port},
      {"extended CONNECT",
       {{":method", "CONNECT"},
        {":protocol", "websocket"},
        {":scheme", "https"},
        {":path", "/"},
        {":authority", "10.0.0.5:80"}},
       0,
       RejectReason::malformed},
  };
  for (const Row& r : rows) {
    CAPTURE(r.name);
    Owner owner;
    ServerSession server(owner);
    owner.server = &server;
    RawClient raw;
    int32_t id = raw.request(r.headers);
    REQUIRE(id > 0);
    pump(raw, server);
    CHECK(owner.connects.empty());
    REQUIRE(owner.rejected.size() == 1);
    CHECK(owner.rejected[0].second.reason == r.reason);
    CHECK_FALSE(owner.rejected[0].second.detail.empty());
    if (r.status != 0) {
      CHECK(raw.status[id] == r.status);
      CHECK(raw.close_code[id] == kNoError);
    } else {
      CHECK(raw.status.count(id) == 0);
      CHECK(raw.close_code[id] == kProtocolError);
    }
    CHECK(server.active_streams() == 0);
    CHECK_FALSE(server.is_dead());  // a bad stream does not end the connection
  }
}

TEST_CASE("oversized request headers are refused with 400, the connection lives on") {
  Wire w;
  Recorder big, ok;
  std::string filler(15000, 'a');  // 45 KB in all: nghttp2 sends it, we refuse it
  w.open(big, "10.0.0.5:80", {{"x-a", filler}, {"x-b", filler}, {"x-c", filler}});
  w.pump();
  CHECK(big.status == 400);
  REQUIRE(w.owner.rejected.size() == 1);
  CHECK(w.owner.rejected[0].second.reason == RejectReason::malformed);
  w.owner.answer = Owner::Answer::accept_now;
  w.open(ok);
  w.pump();
  CHECK(ok.status == 200);
}

TEST_CASE("a refused stream takes no more writes") {
  Wire w;
  Recorder c;
  int32_t id = w.open(c);
  w.pump();
  REQUIRE(w.server.refuse(id, 503).ok());
  CHECK_FALSE(w.server.write(id, as_bytes("x")).ok());
  w.pump();
  CHECK(c.status == 503);
}

TEST_CASE("client refuses to build invalid requests") {
  ClientSession client;
  Recorder r;
  CHECK(client.open({"10.0.0.5", {}}, &r).error().code == Errc::invalid_argument);
  CHECK(client.open({"10.0.0.5:80", {{"Baggage", "x"}}}, &r).error().code ==
        Errc::invalid_argument);
  CHECK(client.open({"10.0.0.5:80", {{"connection", "close"}}}, &r).error().code ==
        Errc::invalid_argument);
  CHECK(client.open({"10.0.0.5:80", {{"x-a", "line\r\nbreak"}}}, &r).error().code ==
        Errc::invalid_argument);
  CHECK(client.open({"10.0.0.5:80", {}}, nullptr).error().code == Errc::invalid_argument);
  CHECK(client.active_streams() == 0);
}

TEST_CASE("stream limits: 100 per client connection, the server advertises 200") {
  Wire w;
  w.pump();
  CHECK(w.client.remote_max_concurrent_streams() == 200);
  CHECK(w.client.stream_limit() == 100);
  std::vector<Recorder> recs(101);
  for (int i = 0; i < 100; ++i) {
    CAPTURE(i);
    REQUIRE(w.client.open({"10.0.0.5:8080", {}}, &recs[i]).ok());
  }
  CHECK_FALSE(w.client.can_open());
  auto extra = w.client.open({"10.0.0.5:8080", {}}, &recs[100]);
  REQUIRE_FALSE(extra.ok());
  CHECK(extra.error().code == Errc::resource_exhausted);
  w.pump();
  CHECK(w.owner.connects.size() == 100);

  // A finished stream frees a slot.
  REQUIRE(w.client.reset(1).ok());
  w.pump();
  CHECK(recs[0].closed);
  CHECK(recs[0].resets.empty());  // we reset it ourselves
  CHECK(w.owner.streams.at(1)->resets == std::vector<uint32_t>{kCancel});
  CHECK(w.client.open({"10.0.0.5:8080", {}}, &recs[100]).ok());
}

TEST_CASE("the client honours a lower server limit") {
  SessionOptions so = server_session_options();
  so.max_concurrent_streams = 3;
  Wire w({}, so);
  w.pump();
  CHECK(w.client.stream_limit() == 3);
  Recorder r[4];
  for (int i = 0; i < 3; ++i) REQUIRE(w.client.open({"10.0.0.5:80", {}}, &r[i]).ok());
  CHECK(w.client.open({"10.0.0.5:80", {}}, &r[3]).error().code == Errc::resource_exhausted);
}

TEST_CASE("PING after 10 s idle; an answered PING keeps the connection") {
  Wire w;
  w.pump();
  TimePoint t0{seconds(100)};
  w.client.on_tick(t0);
  CHECK_FALSE(w.client.want_write());
  w.client.on_tick(t0 + seconds(9));
  CHECK_FALSE(w.client.want_write());
  w.client.on_tick(t0 + seconds(10));
  REQUIRE(w.client.want_write());
  auto out = w.client.pending_output();
  REQUIRE(out.size() == 9 + 8);
  CHECK(out[3] == std::byte{0x6});  // PING
  CHECK(out[4] == std::byte{0x0});  // not an ACK
  w.pump();                         // the server ACKs
  w.client.on_tick(t0 + seconds(11));
  w.client.on_tick(t0 + seconds(30));
  w.client.on_tick(t0 + seconds(31));
  CHECK_FALSE(w.client.is_dead());
  CHECK_FALSE(w.client.failure().has_value());
}

TEST_CASE("an unanswered PING declares the connection dead after 20 s") {
  Wire w;
  w.pump();
  TimePoint t0{seconds(100)};
  w.client.on_tick(t0);
  w.client.on_tick(t0 + seconds(10));
  auto out = w.client.pending_output();
  REQUIRE_FALSE(out.empty());
  w.client.output_written(out.size());  // lost on the way
  w.client.on_tick(t0 + seconds(29));
  CHECK_FALSE(w.client.is_dead());
  w.client.on_tick(t0 + seconds(30));
  CHECK(w.client.is_dead());
  REQUIRE(w.client.failure().has_value());
  CHECK(w.client.failure()->code == Errc::timeout);
}

TEST_CASE("last_activity follows traffic for the pool's idle timeout") {
  Wire w;
  TimePoint t0{seconds(100)};
  w.pump();
  w.client.on_tick(t0);
  CHECK(w.client.last_activity() == t0);
  w.client.on_tick(t0 + seconds(60));
  CHECK(w.client.last_activity() == t0);  // nothing moved
  Recorder c;
  w.open(c);
  w.pump();
  w.client.on_tick(t0 + seconds(61));
  CHECK(w.client.last_activity() == t0 + seconds(61));
  w.client.on_tick(t0 + seconds(200));  // an open stream counts as activity
  CHECK(w.client.last_activity() == t0 + seconds(200));
}

TEST_CASE("protocol errors from the peer become Errc::protocol, not crashes") {
  SUBCASE("server receives HTTP/1.1") {
    Owner owner;
    ServerSession server(owner);
    Status s = server.receive(as_bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == Errc::protocol);
    CHECK(server.is_dead());
    CHECK_FALSE(server.receive(as_bytes("more")).ok());
  }
  SUBCASE("client receives a DATA frame on stream 0") {
    Wire w;
    w.pump();
    const unsigned char bad[] = {0, 0, 1, 0, 0, 0, 0, 0, 0, 'x'};
    Status s = w.client.receive({reinterpret_cast<const std::byte*>(bad), sizeof(bad)});
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == Errc::protocol);
    CHECK(s.error().message.find("PROTOCOL_ERROR") != std::string::npos);
    REQUIRE(w.client.failure().has_value());
    CHECK_FALSE(w.client.is_dead());  // the GOAWAY still has to go out
    std::vector<Error> errors;
    transfer(w.client, w.server, &errors);
    CHECK(w.client.is_dead());
    CHECK(w.server.goaway_received());
    REQUIRE(w.server.failure().has_value());  // the server learns why
    CHECK(w.server.failure()->code == Errc::closed);
  }
  SUBCASE("garbage frames after the preface") {
    Owner owner;
    ServerSession server(owner);
    ClientSession client;
    pump(client, server);
    std::string junk(64, '\xff');
    Status s = server.receive(as_bytes(junk));
    CHECK_FALSE(s.ok());
    CHECK(server.failure().has_value());
  }
}

TEST_CASE("GOAWAY: streams in flight finish, new ones are refused") {
  Wire w;
  w.owner.answer = Owner::Answer::accept_now;
  Recorder c;
  int32_t id = w.open(c);
  w.pump();
  w.server.goaway();
  w.pump();
  CHECK(w.client.goaway_received());
  Recorder c2;
  auto again = w.client.open({"10.0.0.5:8080", {}}, &c2);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().code == Errc::unavailable);
  REQUIRE(w.client.write(id, as_bytes("last words")).ok());
  REQUIRE(w.client.close_write(id).ok());
  REQUIRE(w.server.close_write(id).ok());
  w.pump();
  CHECK(w.owner.streams.at(id)->data == "last words");
  CHECK(c.closed);
  CHECK(c.resets.empty());
  CHECK(w.server.is_dead());
  CHECK(w.client.is_dead());
}

TEST_CASE("a peer reset reaches the handler with its code") {
  Wire w;
  w.owner.answer = Owner::Answer::accept_now;
  Recorder c;
  int32_t id = w.open(c);
  w.pump();
  REQUIRE(w.server.reset(id, kConnectError).ok());
  w.pump();
  CHECK(c.resets == std::vector<uint32_t>{kConnectError});
  CHECK(c.closed);
  CHECK_FALSE(w.client.write(id, as_bytes("x")).ok());
  CHECK(w.client.consume(id, 0).ok());  // a closed stream is not an error
}

}  // namespace
}  // namespace ambit::hbone
