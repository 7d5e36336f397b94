// Listening on a filesystem unix socket the way a node-local admin socket should: the parent
// directory is created, a stale socket left by a crashed process is replaced, a live one is
// never stolen, and the socket has its final mode before anyone can connect.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/base/error.h"

namespace ambit::http {

// A non-blocking, close-on-exec listening unix stream socket at `path` with `mode`
// (0600: only the owner, i.e. root on a node, may talk to the proxy). Errors:
// invalid_argument (path too long or empty), already_exists (another process is listening
// there, or the path is not a socket), io (mkdir/bind/...).
Result<int> listen_unix(const std::string& path, mode_t mode = 0600, int backlog = 64);

// Removes the socket file if it is still ours to remove (best effort, at shutdown).
void remove_unix_socket(const std::string& path);

}  // namespace ambit::http
