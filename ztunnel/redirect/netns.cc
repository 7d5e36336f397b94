#include "ztunnel/redirect/netns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "common/base/log.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace ambit::redirect {

Result<UniqueFd> open_netns(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return sys_error(errno, fmt::format("opening network namespace {}", path));
  return UniqueFd(fd);
}

namespace {

// The namespace this thread started in, opened once per thread: the way home after a visit.
Result<int> home_netns() {
  thread_local int home = -1;
  if (home < 0) {
    home = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0) return sys_error(errno, "opening this thread's network namespace");
  }
  return home;
}

}  // namespace

Status run_in_netns(int netns_fd, const std::function<void()>& fn) {
  auto home = home_netns();
  if (!home) return home.take_error();
  if (::setns(netns_fd, CLONE_NEWNET) != 0)
    return sys_error(errno, "entering the pod's network namespace (needs CAP_SYS_ADMIN)");
  fn();
  if (::setns(*home, CLONE_NEWNET) != 0) {
    log::get("ztunnel")->critical("cannot return to the node network namespace: {}",
                                  std::strerror(errno));
    std::abort();
  }
  return {};
}

Result<int> pod_tcp_socket(int netns_fd, int family, uint32_t mark) {
  Result<int> made = make_error(Errc::internal, "socket not created");
  if (auto s = run_in_netns(netns_fd, [&] { made = io::tcp_socket(family); }); !s)
    return s.take_error();
  if (!made) return made;
  if (mark != 0) {
    if (auto s = io::set_mark(*made, mark); !s) {
      ::close(*made);
      return s.take_error();
    }
  }
  return made;
}

Result<uint64_t> netns_cookie(int netns_fd) {
  int fd = -1;
  int err = 0;
  if (auto s = run_in_netns(netns_fd, [&] {
        fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        err = errno;
      });
      !s)
    return s.take_error();
  if (fd < 0) return sys_error(err, "creating a probe socket in the pod's network namespace");
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  int rc = ::getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len);
  err = errno;
  ::close(fd);
  if (rc != 0) return sys_error(err, "reading SO_NETNS_COOKIE (kernel 5.14 or later)");
  return cookie;
}

Result<uint64_t> inode_of(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return sys_error(errno, "fstat");
  return static_cast<uint64_t>(st.st_ino);
}

Result<std::string> run_command_in_netns(int netns_fd, const std::vector<std::string>& argv,
                                         const std::string& input) {
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/')
    return make_error(Errc::invalid_argument, "run_command_in_netns needs an absolute path");
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return sys_error(errno, "pipe");
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return sys_error(errno, "pipe");
  }
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  char* empty_env[] = {nullptr};
  pid_t pid = ::fork();
  if (pid < 0) return sys_error(errno, "fork");
  if (pid == 0) {
    if (::setns(netns_fd, CLONE_NEWNET) != 0) ::_exit(126);
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    ::execve(args[0], args.data(), empty_env);
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  // A tool that exits before reading its input must not kill ztunnel with SIGPIPE: block it
  // on this thread only, then swallow the one it may have raised.
  sigset_t pipe_set, old_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  size_t off = 0;
  while (off < input.size()) {
    ssize_t n = ::write(in[1], input.data() + off, input.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  ::close(in[1]);
  timespec zero{0, 0};
  ::sigtimedwait(&pipe_set, nullptr, &zero);
  ::pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  std::string output;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n > 0) output.append(buf, static_cast<size_t>(n));
    else if (n == 0 || errno != EINTR) break;
  }
  ::close(out[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
    return make_error(Errc::io, fmt::format("{} exited with {}{}{}", argv[0], code,
                                            output.empty() ? "" : ": ", output));
  }
  return output;
}

Result<std::vector<std::string>> addresses_in_netns(int netns_fd) {
  std::vector<std::string> out;
  int err = 0;
  // getifaddrs talks netlink through a socket made during the call, so the whole call runs
  // inside the namespace.
  if (auto s = run_in_netns(netns_fd, [&] {
        ifaddrs* list = nullptr;
        if (::getifaddrs(&list) != 0) {
          err = errno;
          return;
        }
        for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
          if (i->ifa_addr == nullptr) continue;
          char text[INET6_ADDRSTRLEN] = {};
          if (i->ifa_addr->sa_family == AF_INET) {
            ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, text,
                        sizeof text);
          } else if (i->ifa_addr->sa_family == AF_INET6) {
            ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, text,
                        sizeof text);
          } else {
            continue;
          }
          out.emplace_back(text);
        }
        ::freeifaddrs(list);
      });
      !s)
    return s.take_error();
  if (err != 0) return sys_error(err, "listing addresses in a network namespace");
  return out;
}

}  // namespace ambit::redirect
