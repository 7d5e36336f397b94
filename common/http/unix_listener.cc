#include "common/http/unix_listener.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ambit::http {
namespace {

Status make_parent_dirs(const std::string& path) {
  // mkdir -p of everything before the last '/'.
  size_t end = path.rfind('/');
  if (end == std::string::npos || end == 0) return {};
  std::string dir = path.substr(0, end);
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string prefix = dir.substr(0, pos);
    if (::mkdir(prefix.c_str(), 0755) != 0 && errno != EEXIST) {
      return sys_error(errno, "create directory " + prefix + " for the admin socket");
    }
  }
  return {};
}

bool fill_sockaddr(const std::string& path, sockaddr_un& sun) {
  std::memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sun.sun_path)) return false;
  std::memcpy(sun.sun_path, path.data(), path.size());
  return true;
}

// True when a process accepts connections at `path` right now.
bool someone_listens(const std::string& path) {
  sockaddr_un sun;
  if (!fill_sockaddr(path, sun)) return false;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) == 0;
  ::close(fd);
  return live;
}

// Replaces a stale socket; refuses to touch a live one or anything that is not a socket.
Status clear_stale(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return sys_error(errno, "stat " + path);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return make_error(Errc::already_exists,
                      path + " exists and is not a socket; refusing to replace it");
  }
  if (someone_listens(path)) {
    return make_error(Errc::already_exists,
                      "another process is serving " + path + " (is a second proxy running?)");
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return sys_error(errno, "remove stale socket " + path);
  }
  return {};
}

}  // namespace

Result<int> listen_unix(const std::string& path, mode_t mode, int backlog) {
  // Bound under a temporary name, given its mode, then renamed into place: no client ever
  // sees the socket with the default (umask-derived) mode.
  std::string tmp = path + ".tmp" + std::to_string(::getpid());
  sockaddr_un sun;
  if (!fill_sockaddr(tmp, sun)) {
    return make_error(Errc::invalid_argument,
                      "unix socket path '" + path + "' is empty or longer than " +
                          std::to_string(sizeof(sun.sun_path) - 1 - (tmp.size() - path.size())) +
                          " bytes");
  }
  if (Status s = make_parent_dirs(path); !s) return s.take_error();
  if (Status s = clear_stale(path); !s) return s.take_error();
  ::unlink(tmp.c_str());

  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return sys_error(errno, "create unix socket for " + path);
  auto fail = [&](const std::string& what) -> Error {
    Error e = sys_error(errno, what);
    ::close(fd);
    ::unlink(tmp.c_str());
    return e;
  };
  if (::bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) {
    return fail("bind unix socket " + tmp);
  }
  if (::chmod(tmp.c_str(), mode) != 0) return fail("chmod unix socket " + tmp);
  if (::listen(fd, backlog) != 0) return fail("listen on unix socket " + tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("rename " + tmp + " to " + path);
  return fd;
}

void remove_unix_socket(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(path.c_str());
}

}  // namespace ambit::http
