// Internal to common/tls: turning OpenSSL's thread-local error queue into operator text.
#pragma once

#include <string>
#include <string_view>

#include "common/base/error.h"

namespace ambit::tls::detail {

// Drains the calling thread's OpenSSL error queue into "reason; reason" (empty if none).
// Draining matters: a stale entry would be blamed on the next, unrelated connection.
std::string drain_openssl_errors();

// make_error(code, what + ": " + drained queue) — the queue is always emptied.
Error openssl_error(Errc code, std::string_view what);

}  // namespace ambit::tls::detail
