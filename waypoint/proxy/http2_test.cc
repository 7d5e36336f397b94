// The waypoint's HTTP/2 front end and HTTP/2 upstream over real HBONE (mutual TLS on
// loopback, nghttp2 on both sides): a CONNECT handler runs serve_http2 with a stand-in for
// the decision path; clients are the upstream exchange (exchange_http2) and a bare codec
// client for multiplexing and malformed requests.
#include <unistd.h>

#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "common/hbone/connection.h"
#include "common/http/http2_codec.h"
#include "common/io/loop_test_util.h"
#include "waypoint/proxy/http2_front.h"
#include "waypoint/proxy/upstream_http2.h"
#include "waypoint/proxy/test_tls.h"

using namespace std::chrono_literals;

namespace ambit::waypoint {
namespace {

const char* const kClientId = "spiffe://cluster.local/ns/default/sa/sleep";
const char* const kServerId = "spiffe://cluster.local/ns/bookinfo/sa/waypoint";

using testing::context_for;

tls::IdentityPolicy server_policy() {
  std::vector<tls::SpiffeId> ids;
  ids.push_back(tls::SpiffeId::parse(kServerId).value());
  return tls::IdentityPolicy::any_of(std::move(ids));
}

// The decision path stand-in: answers from the request, "/slow" after 1 s, gRPC-style
// requests with trailers (x-want-grpc-status picks the status; "trailers-only" in the path
// answers with headers only).
io::Task<UpstreamReply> fake_serve(io::EventLoop& loop, Http1Message req) {
  if (req.target == "/slow") {
    Status slept = co_await loop.sleep(1s);
    (void)slept;
  }
  if (req.target == "/denied") co_return local_reply(403, "RBAC: access denied");
  if (req.target == "/none") co_return local_reply(503, "no healthy upstream\n100%");
  UpstreamReply r;
  r.status = 200;
  r.headers.add("x-seen-path", req.target);
  r.headers.add("x-seen-host", req.headers.get("host").value_or("-"));
  r.headers.add("x-seen-http2", req.http2 ? "yes" : "no");
  r.headers.add("x-seen-body-bytes", std::to_string(req.body.size()));
  r.headers.add("x-seen-trailer", req.trailers.get("x-checksum").value_or("-"));
  const std::string want = std::string(req.headers.get("x-want-grpc-status").value_or("0"));
  if (req.headers.get("content-type") == "application/grpc") {
    r.headers.add("content-type", "application/grpc");
    if (req.target.find("trailers-only") != std::string::npos) {
      r.headers.add("grpc-status", want);
      co_return r;
    }
    r.body = std::string("\0\0\0\0\3abc", 8);
    r.trailers.add("grpc-status", want);
    r.trailers.add("grpc-message", want == "0" ? "" : "failed on purpose");
    co_return r;
  }
  r.body = "answer for " + req.target;
  co_return r;
}

struct Harness {
  std::unique_ptr<io::EventLoop> loop;
  io::SocketAddress addr;
  int lfd = -1;
  std::vector<Http2Rejection> rejections;

  Harness() {
    auto l = io::EventLoop::create();
    REQUIRE(l.ok());
    loop = std::move(*l);
    auto fd = io::listen_tcp(io::SocketAddress::loopback_v4(0));
    REQUIRE(fd.ok());
    lfd = *fd;
    addr = *io::local_address(lfd);
    io::spawn(*loop, accept_loop(this));
  }
  ~Harness() { ::close(lfd); }

  static io::Task<void> serve_connect(Harness* h, hbone::InboundConnect, hbone::HboneStream s) {
    REQUIRE(s.accept().ok());
    io::EventLoop& loop = *h->loop;
    Http2FrontEnd fe{loop, [&loop](Http1Message m) { return fake_serve(loop, std::move(m)); },
                     [h](const Http2Rejection& r) { h->rejections.push_back(r); }};
    co_await serve_http2(std::move(fe), s, "");
  }

  static io::Task<void> serve_conn(Harness* h, int fd) {
    hbone::ConnectHandler handler = [h](hbone::InboundConnect c, hbone::HboneStream s) {
      return serve_connect(h, std::move(c), std::move(s));
    };
    Status s = co_await hbone::HboneServerConnection::serve(*h->loop, fd, context_for(kServerId),
                                                            std::move(handler));
    (void)s;
  }

  static io::Task<void> accept_loop(Harness* h) {
    for (;;) {
      Result<io::Accepted> a = co_await h->loop->accept(h->lfd);
      if (!a.ok()) break;
      io::spawn(*h->loop, serve_conn(h, a->fd));
    }
  }

  io::Task<Result<hbone::HboneStream>> open() {
    tls::IdentityPolicy server = server_policy();
    auto conn = co_await hbone::HboneClientConnection::connect(*loop, addr, context_for(kClientId),
                                                               std::move(server));
    if (!conn.ok()) co_return conn.take_error();
    conns.push_back(*conn);
    hbone::ConnectRequest req;
    req.authority = "10.96.0.10:9080";
    Result<hbone::HboneStream> s = co_await (*conn)->open_stream(std::move(req));
    co_return s;
  }
  std::vector<std::shared_ptr<hbone::HboneClientConnection>> conns;
};

http::Http2Message grpc_call(std::string path, std::string status) {
  http::Http2Message m;
  m.method = "POST";
  m.authority = "reviews:9080";
  m.path = std::move(path);
  m.headers = {{"content-type", "application/grpc"}, {"te", "trailers"},
               {"x-want-grpc-status", std::move(status)}};
  m.body = std::string("\0\0\0\0\2hi", 7);
  m.trailers = {{"x-checksum", "c0ffee"}};
  return m;
}

TEST_CASE("an upstream HTTP/2 exchange through the front end keeps body and trailers") {
  Harness h;
  std::vector<Http2Exchange> got;
  bool ok = io::testing::run_bounded(*h.loop, [](Harness& h, auto& got) -> io::Task<void> {
    for (const char* status : {"0", "7"}) {
      auto s = co_await h.open();
      REQUIRE(s.ok());
      http::Http2Message call = grpc_call("/pkg.Svc/Call", status);
      got.push_back(co_await exchange_http2(*s, std::move(call)));
    }
    auto s = co_await h.open();
    REQUIRE(s.ok());
    http::Http2Message only = grpc_call("/pkg.Svc/trailers-only", "5");
    got.push_back(co_await exchange_http2(*s, std::move(only)));
  }(h, got));
  REQUIRE(ok);
  REQUIRE(got.size() == 3);
  for (const auto& ex : got) REQUIRE_MESSAGE(ex.end == Http2ExchangeEnd::response, ex.detail);
  const Http1Message& r0 = got[0].response;
  CHECK(r0.status == 200);
  CHECK(r0.headers.get("x-seen-http2") == "yes");
  CHECK(r0.headers.get("x-seen-host") == "reviews:9080");
  CHECK(r0.headers.get("x-seen-body-bytes") == "7");
  CHECK(r0.headers.get("x-seen-trailer") == "c0ffee");  // request trailers reached the server
  CHECK(r0.body.size() == 8);
  CHECK(r0.trailers.get("grpc-status") == "0");
  CHECK_FALSE(r0.headers.contains("grpc-status"));
  CHECK(got[1].response.trailers.get("grpc-status") == "7");
  CHECK(got[1].response.trailers.get("grpc-message") == "failed on purpose");
  // Trailers-only: grpc-status in the one HEADERS frame, nothing after it.
  CHECK(got[2].response.headers.get("grpc-status") == "5");
  CHECK(got[2].response.trailers.size() == 0);
  CHECK(got[2].response.body.empty());
}

// A bare client on one tunnel: several requests at once, reading until `want` answers.
struct MuxClient {
  std::unique_ptr<http::Http2Codec> codec =
      http::Http2Codec::create(http::Http2Codec::Role::client).value();
  std::vector<http::Http2Event> events;  // in arrival order
};

io::Task<void> run_mux(Harness& h, MuxClient& mc, std::vector<http::Http2Message> reqs,
                       size_t want) {
  auto s = co_await h.open();
  REQUIRE(s.ok());
  for (auto& r : reqs) REQUIRE(mc.codec->submit(r).ok());
  std::vector<std::byte> buf(16384);
  while (mc.events.size() < want) {
    std::string out = mc.codec->take_output();
    if (!out.empty()) {
      Status w = co_await s->write(
          std::span<const std::byte>(reinterpret_cast<const std::byte*>(out.data()), out.size()));
      REQUIRE(w.ok());
    }
    Result<size_t> n = co_await s->read(std::span<std::byte>(buf));
    REQUIRE(n.ok());
    if (*n == 0) break;
    s->consume(*n);
    REQUIRE(mc.codec->feed(std::string_view(reinterpret_cast<const char*>(buf.data()), *n)).ok());
    for (auto& e : mc.codec->take_events()) mc.events.push_back(std::move(e));
  }
}

http::Http2Message get(std::string path) {
  http::Http2Message m;
  m.method = "GET";
  m.authority = "reviews:9080";
  m.path = std::move(path);
  return m;
}

TEST_CASE("streams of one connection are served concurrently: a slow one holds nobody back") {
  Harness h;
  MuxClient mc;
  std::vector<http::Http2Message> reqs = {get("/slow"), get("/a"), get("/b"), get("/c")};
  bool ok = io::testing::run_bounded(*h.loop, run_mux(h, mc, reqs, 4));
  REQUIRE(ok);
  REQUIRE(mc.events.size() == 4);
  for (const auto& e : mc.events) {
    REQUIRE(e.kind == http::Http2Event::Kind::message);
    CHECK(e.message.status == 200);
    CHECK(e.message.body == "answer for " +
                                std::string(*http::find_header(e.message.headers, "x-seen-path")));
  }
  // The slow stream (id 1) answers last although it was sent first.
  CHECK(mc.events.back().stream_id == 1);
}

TEST_CASE("a malformed request is reset with PROTOCOL_ERROR and reported; its neighbours pass") {
  Harness h;
  MuxClient mc;
  http::Http2Message bad = get("/bad");
  bad.headers = {{"x-injected", "a\r\nb"}};
  http::Http2Message no_path = get("");
  std::vector<http::Http2Message> reqs = {get("/before"), bad, no_path, get("/after")};
  bool ok = io::testing::run_bounded(*h.loop, run_mux(h, mc, reqs, 4));
  REQUIRE(ok);
  REQUIRE(mc.events.size() == 4);
  std::map<int32_t, const http::Http2Event*> by_id;
  for (const auto& e : mc.events) by_id[e.stream_id] = &e;
  CHECK(by_id[1]->kind == http::Http2Event::Kind::message);
  CHECK(by_id[7]->kind == http::Http2Event::Kind::message);
  for (int32_t id : {3, 5}) {
    REQUIRE(by_id[id]->kind == http::Http2Event::Kind::reset);
    CHECK(by_id[id]->by_peer);
    CHECK(by_id[id]->error_code == http::kH2ProtocolError);
  }
  REQUIRE(h.rejections.size() == 2);
  CHECK(h.rejections[0].stream_id == 3);
  CHECK(h.rejections[0].error_code == http::kH2ProtocolError);
  CHECK(h.rejections[0].reason == "http2.invalid.header.field");
  CHECK(h.rejections[1].stream_id == 5);
  CHECK(h.rejections[1].reason.starts_with("http2."));
}

TEST_CASE("a local reply to a gRPC call is a trailers-only answer with the mapped grpc-status") {
  Harness h;
  MuxClient mc;
  http::Http2Message denied = grpc_call("/denied", "0");
  http::Http2Message plain = get("/denied");
  http::Http2Message none = grpc_call("/none", "0");
  std::vector<http::Http2Message> reqs = {denied, plain, none};
  bool ok = io::testing::run_bounded(*h.loop, run_mux(h, mc, reqs, 3));
  REQUIRE(ok);
  std::map<int32_t, const http::Http2Event*> by_id;
  for (const auto& e : mc.events) by_id[e.stream_id] = &e;
  REQUIRE(by_id.count(1) == 1);
  REQUIRE(by_id.count(3) == 1);
  const http::Http2Message& g = by_id[1]->message;
  CHECK(g.status == 200);
  CHECK(http::find_header(g.headers, "grpc-status") == "7");  // PERMISSION_DENIED
  CHECK(http::find_header(g.headers, "grpc-message") == "RBAC: access denied");
  CHECK(http::find_header(g.headers, "content-type") == "application/grpc");
  CHECK(g.body.empty());
  CHECK(g.trailers.empty());
  const http::Http2Message& n = by_id[5]->message;
  CHECK(http::find_header(n.headers, "grpc-status") == "14");  // UNAVAILABLE
  CHECK(http::find_header(n.headers, "grpc-message") == "no healthy upstream%0A100%25");
  // Not gRPC: the 403 as it is.
  CHECK(by_id[3]->message.status == 403);
  CHECK(by_id[3]->message.body == "RBAC: access denied");
}

TEST_CASE("a body over the buffer limit is answered 413 on its stream only") {
  Harness h;
  MuxClient mc;
  http::Http2Message big = get("/upload");
  big.method = "POST";
  big.body.assign(kMaxBufferedBody + 1, 'x');
  std::vector<http::Http2Message> reqs = {big, get("/small")};
  bool ok = io::testing::run_bounded(*h.loop, run_mux(h, mc, reqs, 2));
  REQUIRE(ok);
  std::map<int32_t, const http::Http2Event*> by_id;
  for (const auto& e : mc.events) by_id[e.stream_id] = &e;
  REQUIRE(by_id.count(1) == 1);
  REQUIRE(by_id.count(3) == 1);
  CHECK(by_id[1]->message.status == 413);
  CHECK(by_id[3]->message.status == 200);
  REQUIRE(h.rejections.size() == 1);
  CHECK(h.rejections[0].status == 413);
  CHECK(h.rejections[0].request.target == "/upload");
}

io::Task<void> serve_one(io::EventLoop& loop, int lfd, hbone::ConnectHandler handler) {
  Result<io::Accepted> a = co_await loop.accept(lfd);
  REQUIRE(a.ok());
  Status s = co_await hbone::HboneServerConnection::serve(loop, a->fd, context_for(kServerId),
                                                          std::move(handler));
  (void)s;
}

TEST_CASE("a reset upstream stream ends the exchange as a reset") {
  auto l = io::EventLoop::create();
  REQUIRE(l.ok());
  io::EventLoop& loop = **l;
  auto fd = io::listen_tcp(io::SocketAddress::loopback_v4(0));
  REQUIRE(fd.ok());
  io::SocketAddress addr = *io::local_address(*fd);
  // A pod that accepts the tunnel, reads a little and resets it.
  hbone::ConnectHandler resetter = [](hbone::InboundConnect,
                                      hbone::HboneStream s) -> io::Task<void> {
    REQUIRE(s.accept().ok());
    std::vector<std::byte> buf(64);
    Result<size_t> n = co_await s.read(std::span<std::byte>(buf));
    (void)n;
    s.reset();
  };
  Http2Exchange ex;
  bool ok = io::testing::run_bounded(loop, [](io::EventLoop& loop, int lfd, io::SocketAddress addr,
                                              hbone::ConnectHandler handler,
                                              Http2Exchange& ex) -> io::Task<void> {
    io::spawn(loop, serve_one(loop, lfd, std::move(handler)));
    tls::IdentityPolicy server = server_policy();
    auto conn = co_await hbone::HboneClientConnection::connect(loop, addr, context_for(kClientId),
                                                               std::move(server));
    REQUIRE(conn.ok());
    hbone::ConnectRequest req;
    req.authority = "10.0.0.5:9080";
    auto s = co_await (*conn)->open_stream(std::move(req));
    REQUIRE(s.ok());
    ex = co_await exchange_http2(*s, get("/"));
    (*conn)->abort();
  }(loop, *fd, addr, resetter, ex));
  ::close(*fd);
  REQUIRE(ok);
  CHECK(ex.end == Http2ExchangeEnd::reset);
  CHECK_FALSE(ex.detail.empty());
}

}  // namespace
}  // namespace ambit::waypoint
