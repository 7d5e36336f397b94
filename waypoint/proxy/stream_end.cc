#include "waypoint/proxy/stream_end.h"

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

namespace ambit::waypoint {
namespace {

struct Limit {
  io::CancelToken cancel;
  bool done = false;
};

io::Task<void> enforce(io::EventLoop& loop, std::shared_ptr<Limit> l, io::Duration limit,
                       hbone::HboneStream* stream) {
  Status slept = co_await loop.sleep(limit, &l->cancel);
  if (slept.ok() && !l->done) stream->reset();
}

}  // namespace

io::Task<void> linger(io::EventLoop& loop, hbone::HboneStream& stream, io::Duration limit) {
  auto l = std::make_shared<Limit>();
  io::spawn(loop, enforce(loop, l, limit, &stream));
  std::vector<std::byte> buf(4096);
  while (true) {
    Result<size_t> n = co_await stream.read(std::span<std::byte>(buf));
    if (!n.ok() || *n == 0) break;
    stream.consume(*n);
  }
  l->done = true;
  l->cancel.cancel();
}

io::Task<void> linger_owned(io::EventLoop& loop, hbone::HboneStream stream) {
  co_await linger(loop, stream);
}

}  // namespace ambit::waypoint
