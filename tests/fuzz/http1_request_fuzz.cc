// libFuzzer target for the waypoint's HTTP/1.1 request path: bytes from a client, fed to the
// request parser in network-sized pieces the way the proxy feeds it, every complete request
// turned into the view the decisions read (path, query, remote address, trace context) and
// re-serialized for the upstream. Beyond "no crash, no sanitizer report" it checks:
//   - a refused request maps to 400/413/414/431 with a named reason;
//   - what the waypoint would send upstream parses again to the same method, target and body
//     (no header or body smuggled into a second request);
//   - the trace context it forwards is always valid.
// Built and run by tools/fuzz (clang, -fsanitize=fuzzer,address,undefined).

#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <string_view>

#include "waypoint/proxy/http1_codec.h"
#include "waypoint/proxy/trace_context.h"

namespace {

using namespace ambit::waypoint;

class Lcg final : public RandomSource {
 public:
  uint64_t below(uint64_t bound) override {
    state_ = state_ * 6364136223846793005ULL + 1442695040888963407ULL;
    return (state_ >> 33) % bound;
  }

 private:
  uint64_t state_ = 1;
};

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "http1 request fuzz: invariant violated: %s\n", what);
    std::abort();
  }
}

void exercise(Http1Message msg) {
  Request req;
  req.method = msg.method;
  req.path = msg.target;
  req.authority = std::string(msg.headers.get("host").value_or("reviews:9080"));
  for (const auto& f : msg.headers.fields()) {
    if (f.name != "host") req.headers.add(f.name, f.value);
  }
  (void)req.path_only();
  (void)req.query();
  (void)req.query_param("user");
  (void)req.remote_ip();
  (void)principal_namespace(req.headers.get("x-principal").value_or(""));

  Lcg random;
  TraceHop hop = propagate_trace(req.headers, random);
  auto tp = parse_traceparent(req.headers.get("traceparent").value_or(""));
  require(tp.has_value(), "forwarded traceparent does not parse");
  require(tp->trace_id == w3c_trace_id(hop.upstream.trace_id), "trace id changed on the way");

  const std::string up = serialize_request(req.method, req.path, req.authority, req.headers, msg.body);
  Http1Parser again(Http1Parser::Kind::request);
  auto used = again.feed(up);
  require(used.ok() && again.complete(), "the upstream request does not parse");
  require(*used == up.size(), "the upstream request carries a second message");
  Http1Message m2 = again.take();
  require(m2.method == msg.method, "method changed");
  require(m2.target == (msg.target.empty() ? "/" : msg.target), "target changed");
  require(m2.body == msg.body, "body changed");

  (void)serialize_response(200, req.headers, msg.body, msg.method == "HEAD", msg.keep_alive);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  // The first byte picks the read size, so splits at every position get exercised.
  const size_t piece = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  Http1Parser parser(Http1Parser::Kind::request);
  std::string pending;
  size_t pos = 0;
  while (true) {
    while (!pending.empty() && !parser.complete()) {
      auto used = parser.feed(pending);
      if (!used.ok()) {
        const uint32_t status = parser.error_status();
        require(status == 400 || status == 413 || status == 414 || status == 431, "refusal status");
        require(parser.error_details().starts_with("http1."), "refusal without a named reason");
        (void)serialize_response(status, HeaderMap{}, used.error().message, false, false);
        return 0;
      }
      pending.erase(0, *used);
      if (*used == 0) break;
    }
    if (parser.complete()) {
      exercise(parser.take());
      continue;
    }
    if (pos >= input.size()) break;
    const size_t n = std::min(piece, input.size() - pos);
    pending.append(input.substr(pos, n));
    pos += n;
  }
  (void)parser.finish();
  return 0;
}
