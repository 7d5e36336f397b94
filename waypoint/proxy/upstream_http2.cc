#include "waypoint/proxy/upstream_http2.h"

#include <cstddef>
#include <span>
#include <vector>

namespace ambit::waypoint {

std::vector<http::Header> to_fields(const HeaderMap& map) {
  std::vector<http::Header> out;
  out.reserve(map.size());
  for (const auto& f : map.fields()) out.push_back({f.name, f.value});
  return out;
}

HeaderMap to_header_map(const std::vector<http::Header>& fields) {
  HeaderMap out;
  for (const auto& f : fields) out.add(f.name, f.value);
  return out;
}

Http1Message response_of(http::Http2Message&& m) {
  Http1Message r;
  r.http2 = true;
  r.status = static_cast<uint32_t>(m.status);
  r.headers = to_header_map(m.headers);
  r.body = std::move(m.body);
  r.trailers = to_header_map(m.trailers);
  return r;
}

http::Http2Message upstream_http2_request(std::string_view method, std::string_view path,
                                          std::string_view authority, const HeaderMap& headers,
                                          const Http1Message& downstream) {
  http::Http2Message m;
  m.method = method;
  m.path = path;
  m.authority = authority;
  m.headers = to_fields(headers);
  m.body = downstream.body;
  m.trailers = to_fields(downstream.trailers);
  return m;
}

io::Task<Http2Exchange> exchange_http2(hbone::HboneStream& stream, http::Http2Message request) {
  Http2Exchange out;
  http::Http2Options opts;
  opts.max_body = kMaxBufferedBody;
  opts.max_header_bytes = kMaxHeadBytes;
  auto created = http::Http2Codec::create(http::Http2Codec::Role::client, opts);
  if (!created.ok()) {
    out.detail = created.error().to_string();
    co_return out;
  }
  std::unique_ptr<http::Http2Codec> codec = std::move(*created);
  Result<int32_t> id = codec->submit(request);
  if (!id.ok()) {
    out.detail = id.error().to_string();
    co_return out;
  }
  std::vector<std::byte> buf(16384);
  while (true) {
    std::string wire = codec->take_output();
    if (!wire.empty()) {
      Status wrote = co_await stream.write(
          std::span<const std::byte>(reinterpret_cast<const std::byte*>(wire.data()), wire.size()));
      if (!wrote.ok()) {
        out.detail = wrote.error().to_string();
        co_return out;
      }
    }
    for (http::Http2Event& e : codec->take_events()) {
      if (e.stream_id != *id) continue;
      if (e.kind == http::Http2Event::Kind::message) {
        out.end = Http2ExchangeEnd::response;
        out.response = response_of(std::move(e.message));
        // One request per connection: say so, so the pod closes its side cleanly.
        codec->terminate(http::kH2NoError);
        wire = codec->take_output();
        Status bye = co_await stream.write(std::span<const std::byte>(
            reinterpret_cast<const std::byte*>(wire.data()), wire.size()));
        (void)bye;
        co_return out;
      }
      out.end = e.by_peer ? Http2ExchangeEnd::reset : Http2ExchangeEnd::bad_response;
      out.detail = (e.by_peer ? "upstream reset: " : "upstream response refused: ") + e.reason;
      co_return out;
    }
    if (codec->goaway()) {
      out.end = Http2ExchangeEnd::bad_response;
      out.detail = "upstream HTTP/2 error: " + codec->goaway()->second;
      co_return out;
    }
    if (codec->finished()) {
      out.detail = "upstream ended the HTTP/2 connection before answering";
      co_return out;
    }
    Result<size_t> n = co_await stream.read(std::span<std::byte>(buf));
    if (!n.ok()) {
      out.detail = n.error().to_string();
      co_return out;
    }
    if (*n == 0) {
      out.detail = "upstream closed before a complete response";
      co_return out;
    }
    stream.consume(*n);
    Status fed = codec->feed(std::string_view(reinterpret_cast<const char*>(buf.data()), *n));
    (void)fed;  // a connection error shows up as goaway() above, after its GOAWAY is written
  }
}

}  // namespace ambit::waypoint
