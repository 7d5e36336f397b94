// Ending an HBONE stream cleanly. After this side half-closed, waiting (bounded) for the peer
// to end its side lets the stream close without a reset: the last bytes are not lost to an
// abortive close, and peers that rate-limit resets (nghttp2 answers a burst of them with
// GOAWAY) keep the connection.
#pragma once

#include <chrono>

#include "common/hbone/connection.h"
#include "common/io/event_loop.h"

namespace ambit::waypoint {

inline constexpr auto kLingerLimit = std::chrono::seconds(2);

// Reads and drops what the peer still sends until it ends the stream; resets it after `limit`.
io::Task<void> linger(io::EventLoop& loop, hbone::HboneStream& stream,
                      io::Duration limit = kLingerLimit);
// The same for a stream nobody else holds any more (for io::spawn).
io::Task<void> linger_owned(io::EventLoop& loop, hbone::HboneStream stream);

}  // namespace ambit::waypoint
