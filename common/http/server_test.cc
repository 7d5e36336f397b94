#include "common/http/server.h"

#include <doctest/doctest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "common/http/client.h"
#include "common/http/unix_listener.h"

namespace ambit::http {
namespace {

namespace fs = std::filesystem;

// A scratch directory removed at the end of the test.
struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/ambit-http-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path); }
};

// Runs a Server on its own loop thread for the duration of a test.
struct RunningServer {
  std::unique_ptr<io::EventLoop> loop;
  std::unique_ptr<Server> server;
  std::thread thread;
  io::SocketAddress tcp;

  RunningServer(Router router, const std::string& unix_path) {
    loop = std::move(io::EventLoop::create().value());
    server = std::make_unique<Server>(*loop, std::move(router), ServerOptions{.name = "test"});
    tcp = server->listen_tcp(io::SocketAddress::loopback_v4(0)).value();
    if (!unix_path.empty()) REQUIRE(server->listen_unix(unix_path).ok());
    server->start();
    thread = std::thread([this] { (void)loop->run(); });
  }
  ~RunningServer() {
    loop->stop();
    thread.join();
    server.reset();
  }
  Endpoint tcp_endpoint() const { return Endpoint::parse(tcp.to_string()).value(); }
};

Router test_router(std::atomic<int>* sent_hooks = nullptr) {
  Router r;
  r.add("GET", "/hello", [](const Request& req, std::string_view, std::string_view query) {
    return make_response(200, "hello " + std::string(query) + " from " +
                                  (req.peer_ip.empty() ? std::string("unix") : req.peer_ip));
  });
  r.add("POST", "/quit", [sent_hooks](const Request&, std::string_view, std::string_view) {
    Response resp = make_response(200, "bye\n");
    resp.on_sent = [sent_hooks] {
      if (sent_hooks) sent_hooks->fetch_add(1);
    };
    return resp;
  });
  return r;
}

TEST_CASE("the server answers routed requests over TCP and a unix socket") {
  TempDir dir;
  std::string sock = (dir.path / "run" / "ambit" / "admin.sock").string();
  std::atomic<int> hooks{0};
  RunningServer s(test_router(&hooks), sock);

  auto r = fetch(s.tcp_endpoint(), "GET", "/hello?x=1");
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  CHECK(r->body == "hello x=1 from 127.0.0.1");

  auto u = fetch(Endpoint::parse("unix:" + sock).value(), "GET", "/hello");
  REQUIRE(u.ok());
  CHECK(u->body == "hello  from unix");

  auto missing = fetch(s.tcp_endpoint(), "GET", "/nope");
  REQUIRE(missing.ok());
  CHECK(missing->status == 404);
  auto wrong = fetch(s.tcp_endpoint(), "GET", "/quit");
  REQUIRE(wrong.ok());
  CHECK(wrong->status == 405);

  auto q = fetch(s.tcp_endpoint(), "POST", "/quit");
  REQUIRE(q.ok());
  CHECK(q->body == "bye\n");
  // The hook runs after the write; the client may have read the answer a moment before.
  for (int i = 0; i < 200 && hooks.load() == 0; ++i) usleep(5000);
  CHECK(hooks.load() == 1);
}

TEST_CASE("the unix socket is created 0600 in a new directory and removed at shutdown") {
  TempDir dir;
  std::string sock = (dir.path / "a" / "b" / "ztunnel.sock").string();
  {
    RunningServer s(test_router(), sock);
    struct stat st;
    REQUIRE(::stat(sock.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 0777) == 0600);
    // A second server must not steal a live socket.
    auto second = listen_unix(sock);
    REQUIRE_FALSE(second.ok());
    CHECK(second.error().code == Errc::already_exists);
  }
  CHECK_FALSE(fs::exists(sock));
}

TEST_CASE("a stale socket from a dead process is replaced; a regular file is not") {
  TempDir dir;
  std::string sock = (dir.path / "stale.sock").string();
  // Leave a bound socket file behind with nobody listening, as a crash would.
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::strncpy(sun.sun_path, sock.c_str(), sizeof(sun.sun_path) - 1);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) == 0);
  ::close(fd);
  auto l = listen_unix(sock);
  REQUIRE(l.ok());
  ::close(*l);

  std::string file = (dir.path / "plain").string();
  FILE* f = std::fopen(file.c_str(), "w");
  std::fclose(f);
  auto refused = listen_unix(file);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == Errc::already_exists);
  CHECK(fs::exists(file));

  auto too_long = listen_unix("/tmp/" + std::string(200, 'x'));
  REQUIRE_FALSE(too_long.ok());
  CHECK(too_long.error().code == Errc::invalid_argument);
}

// Raw exchanges: pipelining keeps order; garbage gets a 400 and the connection closes.
std::string raw_exchange(const io::SocketAddress& addr, std::string_view wire) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(::connect(fd, addr.data(), addr.size()) == 0);
  REQUIRE(::send(fd, wire.data(), wire.size(), 0) == static_cast<ssize_t>(wire.size()));
  std::string out;
  char buf[4096];
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    // Tearing down an earlier test's io_uring can leave task work that interrupts this
    // thread once; a receive timeout turns that into EINTR instead of a restart.
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) out += "[recv errno " + std::to_string(errno) + "]";
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

TEST_CASE("pipelined requests are answered in order; garbage gets 400 and a close") {
  RunningServer s(test_router(), "");
  std::string two = raw_exchange(
      s.tcp, "GET /hello?a HTTP/1.1\r\nHost: x\r\n\r\nGET /hello?b HTTP/1.1\r\nHost: x\r\n"
             "Connection: close\r\n\r\n");
  CAPTURE(two);
  size_t a = two.find("hello a from");
  size_t b = two.find("hello b from");
  CHECK(a != std::string::npos);
  CHECK(b != std::string::npos);
  CHECK(a < b);
  std::string bad = raw_exchange(s.tcp, "NOT HTTP AT ALL\r\n\r\n");
  CHECK(bad.starts_with("HTTP/1.1 400 Bad Request\r\n"));
  CHECK(bad.find("connection: close") != std::string::npos);
}

TEST_CASE("the client names the endpoint when nobody listens") {
  TempDir dir;
  auto r = fetch(Endpoint::parse((dir.path / "none.sock").string()).value(), "GET", "/");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message.find("none.sock") != std::string::npos);
  CHECK_FALSE(Endpoint::parse("not-an-endpoint").ok());
  CHECK(Endpoint::parse("[::1]:15000").value().to_string() == "[::1]:15000");
}

}  // namespace
}  // namespace ambit::http
