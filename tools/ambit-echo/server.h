// The socket side of ambit-echo: listeners, and one coroutine per connection on a worker's
// event loop. HTTP ports sniff HTTP/2 prior knowledge vs HTTP/1.1 from the first bytes;
// TCP ports echo bytes until the peer half-closes, then half-close.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/base/error.h"
#include "common/io/event_loop.h"
#include "tools/ambit-echo/config.h"
#include "tools/ambit-echo/echo_service.h"

namespace ambit::echo {

enum class ListenerKind : uint8_t { http, tcp_echo };

struct Listener {
  int fd = -1;
  uint16_t port = 0;
  ListenerKind kind = ListenerKind::http;
};

// Opens every configured port for every worker (SO_REUSEPORT when there are several, so the
// kernel spreads connections). Result[i] belongs to worker i. With HOST unset it binds "::"
// dual-stack and falls back to 0.0.0.0 when the host has no IPv6.
Result<std::vector<std::vector<Listener>>> open_listeners(const Config& cfg);

void close_listeners(std::vector<std::vector<Listener>>& listeners);

// Spawns the accept loops of one worker's listeners on `loop` (call from WorkerPool's init).
void start_serving(io::EventLoop& loop, std::span<const Listener> listeners,
                   EchoService& service);

// The client address as /get reports it: "::ffff:10.0.0.1" becomes "10.0.0.1".
std::string display_ip(const std::string& ip);

}  // namespace ambit::echo
