#include "tools/ambit-echo/http2.h"

#include <doctest/doctest.h>
#include <nghttp2/nghttp2.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace ambit::echo {
namespace {

// A real nghttp2 client session, so the server glue is checked against an independent
// peer's view of the bytes rather than against itself.
class TestClient {
 public:
  struct Stream {
    int status = 0;
    std::map<std::string, std::string> headers;
    std::string body;
    bool closed = false;
    uint32_t error_code = 0;
  };

  TestClient() {
    nghttp2_session_callbacks* cbs = nullptr;
    REQUIRE(nghttp2_session_callbacks_new(&cbs) == 0);
    nghttp2_session_callbacks_set_on_header_callback(cbs, &on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &on_frame);
    REQUIRE(nghttp2_session_client_new(&session_, cbs, this) == 0);
    nghttp2_session_callbacks_del(cbs);
    REQUIRE(nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0) == 0);
  }
  ~TestClient() { nghttp2_session_del(session_); }

  int32_t request(const std::string& method, const std::string& path,
                  std::vector<std::pair<std::string, std::string>> extra = {},
                  const std::string* body = nullptr) {
    std::vector<std::pair<std::string, std::string>> h = {
        {":method", method}, {":scheme", "http"}, {":authority", "echo"}, {":path", path}};
    h.insert(h.end(), extra.begin(), extra.end());
    std::vector<nghttp2_nv> nva;
    for (auto& [n, v] : h) {
      nva.push_back({reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()),
                     n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    nghttp2_data_provider prd{};
    if (body != nullptr) {
      body_ = *body;
      prd.read_callback = &read_body;
    }
    int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                        body ? &prd : nullptr, nullptr);
    REQUIRE(id > 0);
    return id;
  }

  void reset(int32_t id) {
    REQUIRE(nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL) == 0);
  }

  std::string take_output() {
    std::string out;
    const uint8_t* p = nullptr;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(session_, &p)) > 0) {
      out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
    }
    return out;
  }
  void feed(const std::string& in) {
    REQUIRE(nghttp2_session_mem_recv(session_, reinterpret_cast<const uint8_t*>(in.data()),
                                     in.size()) == static_cast<ssize_t>(in.size()));
  }

  std::map<int32_t, Stream> streams;
  bool goaway = false;
  uint32_t goaway_error = 0;

 private:
  static TestClient& self(void* p) { return *static_cast<TestClient*>(p); }
  static int on_header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl,
                       const uint8_t* v, size_t vl, uint8_t, void* u) {
    std::string name(reinterpret_cast<const char*>(n), nl);
    std::string value(reinterpret_cast<const char*>(v), vl);
    Stream& s = self(u).streams[f->hd.stream_id];
    if (name == ":status") {
      s.status = std::stoi(value);
    } else {
      s.headers[name] = value;
    }
    return 0;
  }
  static int on_data(nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t len,
                     void* u) {
    self(u).streams[id].body.append(reinterpret_cast<const char*>(d), len);
    return 0;
  }
  static int on_close(nghttp2_session*, int32_t id, uint32_t err, void* u) {
    self(u).streams[id].closed = true;
    self(u).streams[id].error_code = err;
    return 0;
  }
  static int on_frame(nghttp2_session*, const nghttp2_frame* f, void* u) {
    if (f->hd.type == NGHTTP2_GOAWAY) {
      self(u).goaway = true;
      self(u).goaway_error = f->goaway.error_code;
    }
    return 0;
  }
  static ssize_t read_body(nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* fl,
                           nghttp2_data_source*, void* u) {
    std::string& b = self(u).body_;
    size_t n = std::min(len, b.size());
    std::memcpy(buf, b.data(), n);
    b.erase(0, n);
    if (b.empty()) *fl |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  nghttp2_session* session_ = nullptr;
  std::string body_;
};

// Moves bytes both ways until neither side has anything to say.
std::vector<Http2Request> pump(TestClient& client, Http2ServerSession& server) {
  std::vector<Http2Request> got;
  for (int i = 0; i < 10; ++i) {
    std::string c2s = client.take_output();
    if (!c2s.empty()) REQUIRE(server.feed(c2s).ok());
    for (auto& r : server.take_requests()) got.push_back(std::move(r));
    std::string s2c = server.take_output();
    if (!s2c.empty()) client.feed(s2c);
    if (c2s.empty() && s2c.empty()) break;
  }
  return got;
}

std::unique_ptr<Http2ServerSession> make_server() {
  auto s = Http2ServerSession::create("198.51.100.9");
  REQUIRE(s.ok());
  return std::move(*s);
}

TEST_CASE("sniffing tells HTTP/2 prior knowledge from HTTP/1.1 as early as it can") {
  CHECK(sniff_protocol("") == Sniff::need_more);
  CHECK(sniff_protocol("PRI * HTTP/2") == Sniff::need_more);
  CHECK(sniff_protocol(kHttp2Preface) == Sniff::http2);
  CHECK(sniff_protocol(std::string(kHttp2Preface) + "\x00\x00") == Sniff::http2);
  CHECK(sniff_protocol("GET / HTTP/1.1\r\n") == Sniff::http1);
  CHECK(sniff_protocol("P") == Sniff::need_more);
  CHECK(sniff_protocol("POST /") == Sniff::http1);
}

TEST_CASE("a request becomes a Request without pseudo-headers and gets its response") {
  auto server = make_server();
  TestClient client;
  int32_t id = client.request("GET", "/headers?x=1", {{"x-custom", "hello"}});
  auto reqs = pump(client, *server);
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].stream_id == id);
  const Request& req = reqs[0].request;
  CHECK(req.method == "GET");
  CHECK(req.target == "/headers?x=1");
  CHECK(req.version == HttpVersion::http2);
  CHECK(req.peer_ip == "198.51.100.9");
  REQUIRE(req.headers.size() == 1);
  CHECK(req.headers[0].name == "x-custom");

  Response resp;
  resp.status = 201;
  resp.headers = {{"x-app-name", "ratings"}};
  resp.body = "created\n";
  CHECK(server->respond(id, resp, false));
  pump(client, *server);
  const auto& s = client.streams[id];
  CHECK(s.closed);
  CHECK(s.error_code == 0);
  CHECK(s.status == 201);
  CHECK(s.headers.at("x-app-name") == "ratings");
  CHECK(s.headers.at("content-length") == "8");
  CHECK(s.body == "created\n");
}

TEST_CASE("streams complete independently: a later stream may answer first") {
  auto server = make_server();
  TestClient client;
  int32_t slow = client.request("GET", "/delay/1");
  int32_t fast = client.request("GET", "/get");
  REQUIRE(pump(client, *server).size() == 2);
  Response r;
  r.body = "fast";
  REQUIRE(server->respond(fast, r, false));
  pump(client, *server);
  CHECK(client.streams[fast].body == "fast");
  CHECK_FALSE(client.streams[slow].closed);
  r.body = "slow";
  REQUIRE(server->respond(slow, r, false));
  pump(client, *server);
  CHECK(client.streams[slow].body == "slow");
  CHECK_FALSE(server->finished());  // the connection stays open for more streams
}

TEST_CASE("a request body is read and the request completes at END_STREAM") {
  auto server = make_server();
  TestClient client;
  std::string body(100 * 1024, 'b');  // more than one flow-control window of 64 KiB
  client.request("POST", "/anything", {}, &body);
  auto reqs = pump(client, *server);
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].request.method == "POST");
}

TEST_CASE("HEAD and 204 responses carry no body") {
  auto server = make_server();
  TestClient client;
  int32_t head = client.request("HEAD", "/get");
  int32_t empty = client.request("GET", "/status/204");
  auto reqs = pump(client, *server);
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].head);
  Response r;
  r.body = "abc";
  REQUIRE(server->respond(head, r, true));
  Response nc;
  nc.status = 204;
  REQUIRE(server->respond(empty, nc, false));
  pump(client, *server);
  CHECK(client.streams[head].status == 200);
  CHECK(client.streams[head].headers.at("content-length") == "3");
  CHECK(client.streams[head].body.empty());
  CHECK(client.streams[empty].status == 204);
  CHECK(client.streams[empty].headers.count("content-length") == 0);
}

TEST_CASE("a response for a stream the client reset is dropped") {
  auto server = make_server();
  TestClient client;
  int32_t id = client.request("GET", "/delay/5");
  REQUIRE(pump(client, *server).size() == 1);
  client.reset(id);
  pump(client, *server);
  CHECK_FALSE(server->respond(id, Response{}, false));
}

TEST_CASE("garbage after the preface gets a GOAWAY and ends the session") {
  auto server = make_server();
  std::string bad(kHttp2Preface);
  // A SETTINGS frame on stream 1 is a connection error (PROTOCOL_ERROR).
  bad += std::string("\x00\x00\x00\x04\x00\x00\x00\x00\x01", 9);
  (void)server->feed(bad);
  TestClient client;
  client.feed(server->take_output());
  CHECK(client.goaway);
  CHECK(client.goaway_error == NGHTTP2_PROTOCOL_ERROR);
  CHECK(server->finished());
}

TEST_CASE("a broken preface is a protocol error answered with GOAWAY") {
  auto server = make_server();
  Status st = server->feed("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n");
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().code == Errc::protocol);
  std::string out = server->take_output();
  // Frames after the server's SETTINGS: look for a GOAWAY frame header (type 7).
  bool saw_goaway = false;
  for (size_t i = 0; i + 9 <= out.size();) {
    size_t len = (static_cast<uint8_t>(out[i]) << 16) | (static_cast<uint8_t>(out[i + 1]) << 8) |
                 static_cast<uint8_t>(out[i + 2]);
    if (out[i + 3] == 0x7) saw_goaway = true;
    i += 9 + len;
  }
  CHECK(saw_goaway);
  CHECK(server->finished());
}

}  // namespace
}  // namespace ambit::echo
