#include "waypoint/proxy/body_stream.h"

namespace ambit::waypoint {

io::Task<Result<std::string>> Http1BodyStream::next() {
  for (;;) {
    if (finished_) co_return std::string();
    if (!pending_.empty()) {
      Result<size_t> used = parser_.feed(pending_);
      if (!used.ok()) co_return used.take_error();
      pending_.erase(0, *used);
      std::string piece = parser_.take_streamed();
      if (parser_.complete()) finished_ = true;
      streamed_ += piece.size();
      if (!piece.empty() || finished_) co_return piece;
      if (*used > 0) continue;
    }
    Result<size_t> n = co_await stream_.readable();
    if (!n.ok()) co_return n.take_error();
    if (*n == 0) co_return make_error(Errc::connection_reset, "the client closed mid-body");
    std::span<const std::byte> chunk = stream_.peek();
    pending_.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
    stream_.pop(chunk.size());
    stream_.consume(chunk.size());
  }
}

io::Task<Status> send_rest_chunked(hbone::HboneStream& upstream, BodyStream& body) {
  std::string framed;
  for (;;) {
    Result<std::string> piece = co_await body.next();
    if (!piece.ok()) co_return piece.take_error();
    framed.clear();
    append_chunk(framed, *piece);  // an empty piece makes the last chunk "0\r\n\r\n"
    Status w = co_await upstream.write(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(framed.data()), framed.size()));
    if (!w.ok()) co_return w;
    if (piece->empty()) co_return Status{};
  }
}

}  // namespace ambit::waypoint
