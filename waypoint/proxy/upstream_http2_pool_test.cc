// UpstreamHttp2Pool over real HBONE (mutual TLS on loopback): a pod stand-in serves HTTP/2
// with nghttp2 inside each CONNECT tunnel and counts tunnels, so reuse, multiplexing and new
// sessions show up as CONNECTs. Its answer names the tunnel that carried the request.
#include "waypoint/proxy/upstream_http2_pool.h"

#include <unistd.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/io/loop_test_util.h"
#include "waypoint/proxy/test_tls.h"

using namespace std::chrono_literals;

namespace ambit::waypoint {
namespace {

const char* const kClientId = "spiffe://cluster.local/ns/shop/sa/waypoint";
const char* const kServerId = "spiffe://cluster.local/ns/shop/sa/reviews";

using testing::context_for;
using testing::bytes_of;

struct Pod {
  uint32_t max_streams = 100;  // advertised SETTINGS_MAX_CONCURRENT_STREAMS
  int tunnels = 0;             // CONNECTs accepted
  int refused = 0;             // streams refused
  int goaways = 0;             // tunnels that received the client's GOAWAY
  int closed_first = 0;        // tunnels the pod ended before the client did
  size_t max_in_flight = 0;    // requests of one tunnel being answered at once
  std::vector<uint32_t> client_resets;  // RST_STREAM codes of requests not yet complete
  std::vector<std::weak_ptr<struct Tunnel>> open;  // every tunnel, to look at its streams
};

struct Tunnel {
  Tunnel(Pod* p, io::EventLoop& l, hbone::HboneStream st) : pod(p), loop(l), s(std::move(st)) {}
  Pod* pod;
  io::EventLoop& loop;
  hbone::HboneStream s;
  std::unique_ptr<http::Http2Codec> codec;
  int number = 0;
  size_t in_flight = 0;
  bool writing = false;
};
using TunnelPtr = std::shared_ptr<Tunnel>;

io::Task<void> flush(TunnelPtr t) {
  if (t->writing) co_return;
  t->writing = true;
  while (true) {
    std::string out = t->codec->take_output();
    if (out.empty()) break;
    Status w = co_await t->s.write(bytes_of(out));
    if (!w.ok()) break;
  }
  t->writing = false;
}

// "/slow" answers after 100 ms, "/goaway" after 50 ms, the rest at once.
io::Task<void> answer(TunnelPtr t, int32_t id, std::string path) {
  ++t->in_flight;
  t->pod->max_in_flight = std::max(t->pod->max_in_flight, t->in_flight);
  if (path == "/slow" || path == "/goaway") {
    Status slept = co_await t->loop.sleep(path == "/slow" ? 100ms : 50ms);
    (void)slept;
  }
  http::Http2Message r;
  r.status = 200;
  r.body = path + " on tunnel " + std::to_string(t->number);
  (void)t->codec->respond(id, r);
  --t->in_flight;
  co_await flush(t);
}

// Per path: "/hold" is never answered, "/reset" is reset (INTERNAL_ERROR), "/refuse" refused
// (REFUSED_STREAM), "/goaway" sends GOAWAY naming its own stream as the last one, "/kill"
// resets the whole tunnel.
io::Task<void> serve_tunnel(Pod* pod, io::EventLoop& loop, hbone::HboneStream s) {
  REQUIRE(s.accept().ok());
  auto t = std::make_shared<Tunnel>(pod, loop, std::move(s));
  t->number = ++pod->tunnels;
  pod->open.push_back(t);
  http::Http2Options opts;
  opts.max_concurrent_streams = pod->max_streams;
  t->codec = http::Http2Codec::create(http::Http2Codec::Role::server, opts).value();
  bool saw_goaway = false;
  bool client_ended = false;
  std::vector<std::byte> buf(16384);
  while (true) {
    co_await flush(t);
    Result<size_t> n = co_await t->s.read(std::span<std::byte>(buf));
    if (!n.ok() || *n == 0) {
      client_ended = true;
      break;
    }
    t->s.consume(*n);
    (void)t->codec->feed(std::string_view(reinterpret_cast<const char*>(buf.data()), *n));
    if (t->codec->peer_goaway() && !saw_goaway) {
      saw_goaway = true;
      ++pod->goaways;
    }
    for (http::Http2Event& e : t->codec->take_events()) {
      if (e.kind == http::Http2Event::Kind::reset) {
        if (e.by_peer) pod->client_resets.push_back(e.error_code);
        continue;
      }
      const std::string path = e.message.path;
      if (path == "/hold") {
        ++t->in_flight;
      } else if (path == "/reset") {
        t->codec->reset(e.stream_id, http::kH2InternalError);
      } else if (path == "/refuse") {
        ++pod->refused;
        t->codec->reset(e.stream_id, http::kH2RefusedStream);
      } else if (path == "/kill") {
        t->s.reset();
        co_return;
      } else {
        if (path == "/goaway") t->codec->goaway(http::kH2NoError, e.stream_id);
        io::spawn(loop, answer(t, e.stream_id, path));
      }
    }
    if (t->codec->finished()) break;  // after a GOAWAY, with nothing open: close, as servers do
  }
  co_await flush(t);
  if (!client_ended && !t->s.peer_half_closed()) ++pod->closed_first;
  (void)t->s.close_write();
  while (true) {  // until the client ends its side
    Result<size_t> n = co_await t->s.read(std::span<std::byte>(buf));
    if (!n.ok() || *n == 0) break;
    t->s.consume(*n);
  }
}

io::Task<void> accept_all(io::EventLoop& loop, int lfd, Pod* pod) {
  for (;;) {
    Result<io::Accepted> a = co_await loop.accept(lfd);
    if (!a.ok()) co_return;
    hbone::ConnectHandler handler = [pod, &loop](hbone::InboundConnect, hbone::HboneStream s) {
      return serve_tunnel(pod, loop, std::move(s));
    };
    io::spawn(loop, [](io::EventLoop& loop, int fd, hbone::ConnectHandler h) -> io::Task<void> {
      Status st = co_await hbone::HboneServerConnection::serve(loop, fd, context_for(kServerId),
                                                               std::move(h));
      (void)st;
    }(loop, a->fd, std::move(handler)));
  }
}

struct Fixture {
  std::unique_ptr<io::EventLoop> loop;
  int lfd = -1;
  io::SocketAddress addr;
  Pod pod;
  std::shared_ptr<hbone::HboneClientConnection> conn;
  std::unique_ptr<UpstreamHttp2Pool> pool;
  UpstreamHttp2Pool::Limits limits;

  Fixture() {
    auto l = io::EventLoop::create();
    REQUIRE(l.ok());
    loop = std::move(*l);
    auto fd = io::listen_tcp(io::SocketAddress::loopback_v4(0));
    REQUIRE(fd.ok());
    lfd = *fd;
    addr = *io::local_address(lfd);
    io::spawn(*loop, accept_all(*loop, lfd, &pod));
    pool = std::make_unique<UpstreamHttp2Pool>(*loop);
  }
  ~Fixture() { ::close(lfd); }
};

// The CONNECT a new session runs on, over one shared HBONE connection.
io::Task<Result<hbone::HboneStream>> open_tunnel(Fixture& f) {
  if (!f.conn) {
    std::vector<tls::SpiffeId> ids;
    ids.push_back(tls::SpiffeId::parse(kServerId).value());
    auto conn = co_await hbone::HboneClientConnection::connect(
        *f.loop, f.addr, context_for(kClientId), tls::IdentityPolicy::any_of(std::move(ids)));
    if (!conn.ok()) co_return conn.take_error();
    f.conn = *conn;
  }
  hbone::ConnectRequest req;
  req.authority = "10.0.0.7:9080";
  Result<hbone::HboneStream> s = co_await f.conn->open_stream(std::move(req));
  co_return s;
}

http::Http2Message get(const std::string& path) {
  http::Http2Message m;
  m.method = "GET";
  m.authority = "reviews:9080";
  m.path = path;
  return m;
}

io::Task<Http2Exchange> request(Fixture& f, std::string path,
                                std::shared_ptr<Http2Call> call = std::make_shared<Http2Call>()) {
  UpstreamHttp2Pool::Opener open = [&f]() { return open_tunnel(f); };
  Http2Exchange ex = co_await f.pool->exchange(UpstreamHttp2Pool::key("10.0.0.7:9080", "10.0.1.1"),
                                               f.limits, std::move(open), std::move(call),
                                               get(path));
  co_return ex;
}

// Several requests at once; their outcomes in the order given.
struct Batch {
  std::vector<Http2Exchange> got;
  size_t done = 0;
};

io::Task<void> one_of(Fixture& f, Batch& b, size_t i, std::string path,
                      std::shared_ptr<Http2Call> call) {
  b.got[i] = co_await request(f, std::move(path), std::move(call));
  ++b.done;
}

io::Task<void> concurrently(Fixture& f, Batch& b, std::vector<std::string> paths,
                            std::vector<std::shared_ptr<Http2Call>> calls = {}) {
  b.got.assign(paths.size(), Http2Exchange{});
  b.done = 0;
  calls.resize(paths.size());
  for (size_t i = 0; i < paths.size(); ++i) {
    if (!calls[i]) calls[i] = std::make_shared<Http2Call>();
    io::spawn(*f.loop, one_of(f, b, i, paths[i], calls[i]));
  }
  while (b.done < paths.size()) {
    Status slept = co_await f.loop->sleep(5ms);
    (void)slept;
  }
}

bool answered(const Http2Exchange& ex, const std::string& body) {
  return ex.end == Http2ExchangeEnd::response && ex.response.status == 200 &&
         ex.response.body == body;
}

io::Task<void> pause(Fixture& f, io::Duration d) {
  Status slept = co_await f.loop->sleep(d);
  (void)slept;
}

TEST_CASE("sequential HTTP/2 requests reuse one session: one CONNECT at the pod") {
  Fixture f;
  std::vector<Http2Exchange> got;
  REQUIRE(io::testing::run_bounded(*f.loop, [](Fixture& f, auto& got) -> io::Task<void> {
    for (const char* path : {"/a", "/b", "/c"}) got.push_back(co_await request(f, path));
  }(f, got)));
  REQUIRE(got.size() == 3);
  CHECK(answered(got[0], "/a on tunnel 1"));
  CHECK(answered(got[1], "/b on tunnel 1"));
  CHECK(answered(got[2], "/c on tunnel 1"));
  CHECK(f.pod.tunnels == 1);
  CHECK(f.pool->opened() == 1);
  CHECK(f.pool->reused() == 2);
}

TEST_CASE("concurrent HTTP/2 requests are multiplexed on one session, each gets its own answer") {
  Fixture f;
  Batch b;
  REQUIRE(io::testing::run_bounded(*f.loop, concurrently(f, b, {"/slow", "/a", "/slow", "/b", "/c"})));
  CHECK(answered(b.got[0], "/slow on tunnel 1"));
  CHECK(answered(b.got[1], "/a on tunnel 1"));
  CHECK(answered(b.got[2], "/slow on tunnel 1"));
  CHECK(answered(b.got[3], "/b on tunnel 1"));
  CHECK(answered(b.got[4], "/c on tunnel 1"));
  CHECK(f.pod.tunnels == 1);  // the requests that came while it opened waited for it
  CHECK(f.pod.max_in_flight >= 2);
}

TEST_CASE("a session full at the pod's SETTINGS_MAX_CONCURRENT_STREAMS makes the pool open another") {
  Fixture f;
  f.pod.max_streams = 2;
  Batch b;
  REQUIRE(io::testing::run_bounded(*f.loop, [](Fixture& f, Batch& b) -> io::Task<void> {
    Http2Exchange first = co_await request(f, "/a");  // its SETTINGS arrive
    CHECK(answered(first, "/a on tunnel 1"));
    std::vector<std::string> paths(5, "/slow");
    co_await concurrently(f, b, std::move(paths));
  }(f, b)));
  for (const auto& ex : b.got) CHECK(ex.end == Http2ExchangeEnd::response);
  CHECK(f.pod.tunnels == 3);
  CHECK(f.pod.max_in_flight == 2);
}

TEST_CASE("a reset of one stream ends only that request; the session carries on") {
  Fixture f;
  Batch b;
  Http2Exchange after;
  REQUIRE(io::testing::run_bounded(*f.loop, [](Fixture& f, Batch& b, Http2Exchange& after)
                                                -> io::Task<void> {
    std::vector<std::string> paths = {"/slow", "/reset", "/slow", "/a"};
    co_await concurrently(f, b, std::move(paths));
    after = co_await request(f, "/after");
  }(f, b, after)));
  CHECK(answered(b.got[0], "/slow on tunnel 1"));
  CHECK(b.got[1].end == Http2ExchangeEnd::reset);
  CHECK(b.got[1].detail.find("INTERNAL_ERROR") != std::string::npos);
  CHECK_FALSE(b.got[1].refused);
  CHECK(answered(b.got[2], "/slow on tunnel 1"));
  CHECK(answered(b.got[3], "/a on tunnel 1"));
  CHECK(answered(after, "/after on tunnel 1"));
  CHECK(f.pod.tunnels == 1);
}

TEST_CASE("a session whose HBONE stream ends fails all its pending requests; the next opens anew") {
  Fixture f;
  Batch b;
  Http2Exchange after;
  REQUIRE(io::testing::run_bounded(*f.loop, [](Fixture& f, Batch& b, Http2Exchange& after)
                                                -> io::Task<void> {
    std::vector<std::string> paths = {"/hold", "/hold", "/hold", "/kill"};
    co_await concurrently(f, b, std::move(paths));
    after = co_await request(f, "/after");
  }(f, b, after)));
  for (const auto& ex : b.got) {
    CHECK(ex.end == Http2ExchangeEnd::reset);
    CHECK_FALSE(ex.refused);
  }
  CHECK(answered(after, "/after on tunnel 2"));
  CHECK(f.pod.tunnels == 2);
}

TEST_CASE("requests above the pod's GOAWAY last-stream-id go again on a new session") {
  Fixture f;
  Batch b;
  REQUIRE(io::testing::run_bounded(*f.loop, [](Fixture& f, Batch& b) -> io::Task<void> {
    Http2Exchange first = co_await request(f, "/a");
    CHECK(answered(first, "/a on tunnel 1"));
    std::vector<std::string> paths = {"/goaway", "/x", "/y"};
    co_await concurrently(f, b, std::move(paths));
  }(f, b)));
  CHECK(answered(b.got[0], "/goaway on tunnel 1"));  // at or below the last-stream-id
  CHECK(answered(b.got[1], "/x on tunnel 2"));
  CHECK(answered(b.got[2], "/y on tunnel 2"));
  CHECK(f.pod.tunnels == 2);
}

TEST_CASE("a refused stream goes once more, then ends as refused") {
  Fixture f;
  Http2Exchange got;
  REQUIRE(io::testing::run_bounded(*f.loop, [](Fixture& f, Http2Exchange& got) -> io::Task<void> {
    got = co_await request(f, "/refuse");
  }(f, got)));
  CHECK(got.end == Http2ExchangeEnd::reset);
  CHECK(got.refused);
  CHECK(f.pod.refused == 2);
}

TEST_CASE("a cancelled request resets only its own stream (RST_STREAM CANCEL)") {
  Fixture f;
  Batch b;
  Http2Exchange after;
  size_t pod_streams_left = 99;
  auto held = std::make_shared<Http2Call>();
  REQUIRE(io::testing::run_bounded(*f.loop, [](Fixture& f, Batch& b, Http2Exchange& after,
                                               size_t& pod_streams_left,
                                               std::shared_ptr<Http2Call> held) -> io::Task<void> {
    io::spawn(*f.loop, [](Fixture& f, std::shared_ptr<Http2Call> held) -> io::Task<void> {
      co_await pause(f, 50ms);
      held->cancel();  // what the attempt's watchdog does at its deadline
    }(f, held));
    std::vector<std::string> paths = {"/hold", "/slow"};
    std::vector<std::shared_ptr<Http2Call>> calls = {held, nullptr};
    co_await concurrently(f, b, std::move(paths), std::move(calls));
    after = co_await request(f, "/after");
    co_await pause(f, 20ms);
    // The held stream is gone at the pod too (its RST_STREAM arrived); the tunnel is still up.
    REQUIRE(f.pod.open.size() == 1);
    auto tunnel = f.pod.open[0].lock();
    REQUIRE(tunnel);
    pod_streams_left = tunnel->codec->open_streams();
  }(f, b, after, pod_streams_left, held)));
  CHECK(b.got[0].end == Http2ExchangeEnd::reset);
  CHECK(held->cancelled());
  CHECK(answered(b.got[1], "/slow on tunnel 1"));
  CHECK(answered(after, "/after on tunnel 1"));
  CHECK(f.pod.tunnels == 1);
  CHECK(pod_streams_left == 0);
}

TEST_CASE("maxRequestsPerConnection: a spent session takes no more and ends with GOAWAY") {
  Fixture f;
  f.limits.max_requests = 2;
  std::vector<Http2Exchange> got;
  REQUIRE(io::testing::run_bounded(*f.loop, [](Fixture& f, auto& got) -> io::Task<void> {
    for (const char* path : {"/a", "/b", "/c"}) got.push_back(co_await request(f, path));
    co_await pause(f, 50ms);
  }(f, got)));
  CHECK(answered(got[0], "/a on tunnel 1"));
  CHECK(answered(got[1], "/b on tunnel 1"));
  CHECK(answered(got[2], "/c on tunnel 2"));
  CHECK(f.pod.tunnels == 2);
  CHECK(f.pod.goaways == 1);
  CHECK(f.pod.closed_first == 1);  // the spent session waited for the pod to close
}

TEST_CASE("an idle session ends after its idle timeout; the next request opens a new one") {
  Fixture f;
  f.limits.idle_timeout = 50ms;
  Http2Exchange first, second;
  size_t sessions_after_idle = 99;
  REQUIRE(io::testing::run_bounded(*f.loop, [](Fixture& f, Http2Exchange& first,
                                               Http2Exchange& second,
                                               size_t& sessions_after_idle) -> io::Task<void> {
    first = co_await request(f, "/a");
    co_await pause(f, 1500ms);  // the sweeper runs each second
    sessions_after_idle = f.pool->sessions();
    second = co_await request(f, "/b");
  }(f, first, second, sessions_after_idle)));
  CHECK(answered(first, "/a on tunnel 1"));
  CHECK(sessions_after_idle == 0);
  CHECK(f.pod.goaways == 1);
  CHECK(answered(second, "/b on tunnel 2"));
}

}  // namespace
}  // namespace ambit::waypoint
