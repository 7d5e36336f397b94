#include "common/http/http2_codec.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace ambit::http {
namespace {

// A client codec and a server codec wired back to back (two independent nghttp2 sessions).
struct Pair {
  std::unique_ptr<Http2Codec> client, server;
  std::vector<Http2Event> client_events, server_events;
  Status server_fed, client_fed;

  explicit Pair(Http2Options server_opts = {}) {
    auto c = Http2Codec::create(Http2Codec::Role::client);
    auto s = Http2Codec::create(Http2Codec::Role::server, server_opts);
    REQUIRE(c.ok());
    REQUIRE(s.ok());
    client = std::move(*c);
    server = std::move(*s);
  }

  // Moves bytes both ways until both are quiet.
  void pump() {
    for (int round = 0; round < 64; ++round) {
      std::string to_server = client->take_output();
      std::string to_client = server->take_output();
      if (to_server.empty() && to_client.empty()) return;
      if (!to_server.empty() && server_fed.ok()) server_fed = server->feed(to_server);
      if (!to_client.empty() && client_fed.ok()) client_fed = client->feed(to_client);
      for (auto& e : server->take_events()) server_events.push_back(std::move(e));
      for (auto& e : client->take_events()) client_events.push_back(std::move(e));
    }
    FAIL("the codecs never went quiet");
  }
};

Http2Message get(std::string path) {
  Http2Message m;
  m.method = "GET";
  m.authority = "reviews:9080";
  m.path = std::move(path);
  return m;
}

const Http2Event* find_event(const std::vector<Http2Event>& events, int32_t id) {
  for (const auto& e : events) {
    if (e.stream_id == id) return &e;
  }
  return nullptr;
}

TEST_CASE("sniffing tells a prior-knowledge preface from HTTP/1.1") {
  CHECK(sniff_protocol("PRI * HTTP/2.0\r\n") == Sniff::need_more);
  CHECK(sniff_protocol(kHttp2Preface) == Sniff::http2);
  CHECK(sniff_protocol("GET / HTTP/1.1\r\n") == Sniff::http1);
  CHECK(sniff_protocol("P") == Sniff::need_more);
  CHECK(sniff_protocol("PUT / HTTP/1.1\r\n\r\n") == Sniff::http1);
}

TEST_CASE("concurrent streams are answered in any order, each with its own body") {
  Pair p;
  std::vector<int32_t> ids;
  for (int i = 0; i < 3; ++i) {
    auto id = p.client->submit(get("/item/" + std::to_string(i)));
    REQUIRE(id.ok());
    ids.push_back(*id);
  }
  p.pump();
  REQUIRE(p.server_events.size() == 3);
  for (const auto& e : p.server_events) {
    CHECK(e.kind == Http2Event::Kind::message);
    CHECK(e.message.method == "GET");
    CHECK(e.message.authority == "reviews:9080");
  }
  // The last request is answered first; the first one stays pending a while.
  for (int i = 2; i >= 0; --i) {
    const Http2Event& req = p.server_events[static_cast<size_t>(i)];
    Http2Message resp;
    resp.status = 200;
    resp.headers.push_back({"x-served", req.message.path});
    resp.headers.push_back({"connection", "keep-alive"});  // hop-by-hop: must not go out
    resp.body = "body of " + req.message.path;
    REQUIRE(p.server->respond(req.stream_id, resp));
    p.pump();
    const Http2Event* got = find_event(p.client_events, ids[static_cast<size_t>(i)]);
    REQUIRE(got != nullptr);
    CHECK(got->kind == Http2Event::Kind::message);
    CHECK(got->message.status == 200);
    CHECK(got->message.body == "body of /item/" + std::to_string(i));
    CHECK(find_header(got->message.headers, "x-served") == req.message.path);
    CHECK_FALSE(find_header(got->message.headers, "connection").has_value());
    CHECK(find_header(got->message.headers, "content-length") ==
          std::to_string(got->message.body.size()));
  }
  CHECK(p.client_events.size() == 3);
}

TEST_CASE("request and response trailers pass; a trailers-only answer stays headers-only") {
  Pair p;
  Http2Message req = get("/pkg.Svc/Call");
  req.method = "POST";
  req.headers = {{"content-type", "application/grpc"}, {"te", "trailers"}};
  req.body = std::string("\0\0\0\0\2hi", 7);
  req.trailers = {{"x-request-checksum", "abc"}};
  auto id = p.client->submit(req);
  REQUIRE(id.ok());
  auto id2 = p.client->submit(get("/pkg.Svc/Other"));
  REQUIRE(id2.ok());
  p.pump();
  REQUIRE(p.server_events.size() == 2);
  const Http2Event* with_body = find_event(p.server_events, *id);
  REQUIRE(with_body != nullptr);
  const Http2Message& got = with_body->message;
  CHECK(got.body == req.body);
  REQUIRE(got.trailers.size() == 1);
  CHECK(got.trailers[0].name == "x-request-checksum");
  CHECK(find_header(got.headers, "te") == "trailers");

  Http2Message resp;
  resp.status = 200;
  resp.headers = {{"content-type", "application/grpc"}};
  resp.body = std::string("\0\0\0\0\2ok", 7);
  resp.trailers = {{"grpc-status", "0"}, {"grpc-message", ""}};
  REQUIRE(p.server->respond(*id, resp));
  Http2Message only;
  only.status = 200;
  only.headers = {{"content-type", "application/grpc"}, {"grpc-status", "5"},
                  {"grpc-message", "not found"}};
  REQUIRE(p.server->respond(*id2, only));
  p.pump();
  const Http2Event* r1 = find_event(p.client_events, *id);
  const Http2Event* r2 = find_event(p.client_events, *id2);
  REQUIRE(r1 != nullptr);
  REQUIRE(r2 != nullptr);
  CHECK(r1->message.body == resp.body);
  REQUIRE(r1->message.trailers.size() == 2);
  CHECK(r1->message.trailers[0].name == "grpc-status");
  CHECK(r1->message.trailers[0].value == "0");
  CHECK_FALSE(find_header(r1->message.headers, "grpc-status").has_value());
  CHECK(r2->message.trailers.empty());
  CHECK(r2->message.body.empty());
  CHECK(find_header(r2->message.headers, "grpc-status") == "5");
}

TEST_CASE("a malformed request resets only its own stream, with PROTOCOL_ERROR and a reason") {
  Pair p;
  Http2Message bad = get("/bad");
  bad.headers = {{"x-injected", "a\r\nb"}};  // CR LF in a value is malformed (RFC 9113 §8.2.1)
  auto bad_id = p.client->submit(bad);
  Http2Message no_path = get("");
  auto no_path_id = p.client->submit(no_path);
  auto good_id = p.client->submit(get("/good"));
  REQUIRE(bad_id.ok());
  REQUIRE(no_path_id.ok());
  REQUIRE(good_id.ok());
  p.pump();
  CHECK(p.server_fed.ok());
  const Http2Event* bad_ev = find_event(p.server_events, *bad_id);
  REQUIRE(bad_ev != nullptr);
  CHECK(bad_ev->kind == Http2Event::Kind::reset);
  CHECK(bad_ev->error_code == kH2ProtocolError);
  CHECK_FALSE(bad_ev->by_peer);
  CHECK(bad_ev->reason == "http2.invalid.header.field");
  const Http2Event* np = find_event(p.server_events, *no_path_id);
  REQUIRE(np != nullptr);
  CHECK(np->kind == Http2Event::Kind::reset);
  CHECK(np->error_code == kH2ProtocolError);
  CHECK(np->reason.starts_with("http2."));
  const Http2Event* good = find_event(p.server_events, *good_id);
  REQUIRE(good != nullptr);
  CHECK(good->kind == Http2Event::Kind::message);
  // The client sees the reset of the bad stream as a reset by its peer.
  const Http2Event* seen = find_event(p.client_events, *bad_id);
  REQUIRE(seen != nullptr);
  CHECK(seen->kind == Http2Event::Kind::reset);
  CHECK(seen->by_peer);
  CHECK(seen->error_code == kH2ProtocolError);
  // The good stream is still answerable.
  Http2Message resp;
  resp.status = 204;
  REQUIRE(p.server->respond(good->stream_id, resp));
  p.pump();
  const Http2Event* answer = find_event(p.client_events, *good_id);
  REQUIRE(answer != nullptr);
  CHECK(answer->message.status == 204);
}

TEST_CASE("a broken frame ends the connection with a GOAWAY carrying the error") {
  Pair p;
  auto id = p.client->submit(get("/"));
  REQUIRE(id.ok());
  p.pump();
  // A DATA frame on stream 0 is a connection error (RFC 9113 §6.1).
  const std::string data_on_zero("\x00\x00\x01\x00\x00\x00\x00\x00\x00x", 10);
  Status fed = p.server->feed(data_on_zero);
  CHECK_FALSE(fed.ok());
  REQUIRE(p.server->goaway().has_value());
  CHECK(p.server->goaway()->first == kH2ProtocolError);
  std::string out = p.server->take_output();
  REQUIRE(out.size() >= 9);
  CHECK(static_cast<uint8_t>(out[3]) == NGHTTP2_GOAWAY);
  CHECK(p.server->finished());
}

TEST_CASE("a bad preface is a connection error too") {
  auto s = Http2Codec::create(Http2Codec::Role::server);
  REQUIRE(s.ok());
  Status fed = (*s)->feed("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n");
  CHECK_FALSE(fed.ok());
  REQUIRE((*s)->goaway().has_value());
  CHECK((*s)->goaway()->second == "http2.bad_preface");
}

TEST_CASE("a body over the limit is reported once, not buffered") {
  Http2Options opts;
  opts.max_body = 1000;
  Pair p(opts);
  Http2Message big = get("/upload");
  big.method = "POST";
  big.body.assign(5000, 'x');
  auto id = p.client->submit(big);
  auto small = p.client->submit(get("/small"));
  REQUIRE(id.ok());
  REQUIRE(small.ok());
  p.pump();
  const Http2Event* e = find_event(p.server_events, *id);
  REQUIRE(e != nullptr);
  CHECK(e->kind == Http2Event::Kind::too_large);
  CHECK(e->message.path == "/upload");
  CHECK(e->message.body.empty());
  Http2Message resp;
  resp.status = 413;
  resp.body = "payload too large";
  REQUIRE(p.server->respond(*id, resp));
  p.pump();
  const Http2Event* answer = find_event(p.client_events, *id);
  REQUIRE(answer != nullptr);
  CHECK(answer->message.status == 413);
  const Http2Event* s = find_event(p.server_events, *small);
  REQUIRE(s != nullptr);
  CHECK(s->kind == Http2Event::Kind::message);
}

TEST_CASE("a response over the client's limit resets the stream with a reason") {
  Pair p;
  auto c = Http2Codec::create(Http2Codec::Role::client, Http2Options{.max_body = 10});
  REQUIRE(c.ok());
  p.client = std::move(*c);
  auto id = p.client->submit(get("/"));
  REQUIRE(id.ok());
  p.pump();
  REQUIRE(p.server_events.size() == 1);
  Http2Message resp;
  resp.status = 200;
  resp.body.assign(100, 'y');
  REQUIRE(p.server->respond(*id, resp));
  p.pump();
  const Http2Event* e = find_event(p.client_events, *id);
  REQUIRE(e != nullptr);
  CHECK(e->kind == Http2Event::Kind::reset);
  CHECK_FALSE(e->by_peer);
  CHECK(e->reason.find("larger than 10") != std::string::npos);
}

}  // namespace
}  // namespace ambit::http
