// Request bodies larger than the waypoint buffers (kMaxBufferedBody): instead of 413, the
// request goes upstream with its head and the buffered part first, then the rest as the
// client sends it, re-framed as HTTP/1.1 chunks. Such a request is attempted once and never
// retried: the streamed bytes are gone once sent (issue #5). Memory stays bounded: the rest
// moves one read at a time, and the client's window reopens only as reads are taken.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/base/error.h"
#include "common/hbone/connection.h"
#include "common/io/event_loop.h"
#include "waypoint/proxy/http1_codec.h"

namespace ambit::waypoint {

// The rest of one request body, pulled piece by piece.
class BodyStream {
 public:
  virtual ~BodyStream() = default;
  // The next piece; "" once the body ended; an error when the client failed or vanished.
  virtual io::Task<Result<std::string>> next() = 0;
  bool finished() const { return finished_; }
  uint64_t streamed() const { return streamed_; }

 protected:
  bool finished_ = false;
  uint64_t streamed_ = 0;
};

// The rest of an HTTP/1.1 request being parsed off a downstream HBONE stream: feeds `pending`
// and further reads to `parser` (whose head was taken in streaming mode) and hands out the
// body bytes it parsed.
class Http1BodyStream final : public BodyStream {
 public:
  Http1BodyStream(Http1Parser& parser, std::string& pending, hbone::HboneStream& stream)
      : parser_(parser), pending_(pending), stream_(stream) {}
  io::Task<Result<std::string>> next() override;

 private:
  Http1Parser& parser_;
  std::string& pending_;
  hbone::HboneStream& stream_;
};

// Writes the whole rest of `body` to `upstream` as chunks, then the last chunk.
io::Task<Status> send_rest_chunked(hbone::HboneStream& upstream, BodyStream& body);

}  // namespace ambit::waypoint
