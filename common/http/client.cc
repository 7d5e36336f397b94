#include "common/http/client.h"

#include <http_parser.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "common/io/socket.h"

namespace ambit::http {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// Waits until fd is ready for `events` or the deadline passes.
Status wait_for(int fd, short events, Clock::time_point deadline, const std::string& what) {
  for (;;) {
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r > 0) return {};
    if (r == 0) return make_error(Errc::timeout, what + " timed out");
    if (errno != EINTR) return sys_error(errno, what);
  }
}

Result<int> connect_to(const Endpoint& ep, Clock::time_point deadline) {
  int fd = -1;
  int rc = 0;
  if (!ep.unix_path.empty()) {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    if (ep.unix_path.size() >= sizeof(sun.sun_path)) {
      return make_error(Errc::invalid_argument, "unix socket path too long: " + ep.unix_path);
    }
    std::memcpy(sun.sun_path, ep.unix_path.data(), ep.unix_path.size());
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return sys_error(errno, "create unix socket");
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun));
  } else {
    auto addr = io::SocketAddress::from_ip_port(ep.host, ep.port);
    if (!addr) return addr.take_error();
    auto s = io::tcp_socket(addr->family());
    if (!s) return s.take_error();
    fd = *s;
    rc = ::connect(fd, addr->data(), addr->size());
  }
  if (rc != 0 && errno != EINPROGRESS && errno != EAGAIN) {
    Error e = sys_error(errno, "connect to " + ep.to_string());
    ::close(fd);
    return e;
  }
  if (rc != 0) {
    if (Status st = wait_for(fd, POLLOUT, deadline, "connect to " + ep.to_string()); !st) {
      ::close(fd);
      return st.take_error();
    }
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      ::close(fd);
      return sys_error(err, "connect to " + ep.to_string());
    }
  }
  return fd;
}

struct ResponseParser {
  http_parser parser{};
  ClientResponse resp;
  bool in_value = false;
  bool done = false;

  static ResponseParser& self(http_parser* p) { return *static_cast<ResponseParser*>(p->data); }
  static int on_header_field(http_parser* p, const char* at, size_t len) {
    ResponseParser& r = self(p);
    if (r.in_value || r.resp.headers.empty()) r.resp.headers.push_back({});
    r.in_value = false;
    r.resp.headers.back().name.append(at, len);
    return 0;
  }
  static int on_header_value(http_parser* p, const char* at, size_t len) {
    ResponseParser& r = self(p);
    r.in_value = true;
    r.resp.headers.back().value.append(at, len);
    return 0;
  }
  static int on_body(http_parser* p, const char* at, size_t len) {
    self(p).resp.body.append(at, len);
    return 0;
  }
  static int on_complete(http_parser* p) {
    ResponseParser& r = self(p);
    r.resp.status = static_cast<int>(p->status_code);
    r.done = true;
    return 0;
  }
};

const http_parser_settings kResponseSettings = {
    .on_message_begin = nullptr,
    .on_url = nullptr,
    .on_status = nullptr,
    .on_header_field = &ResponseParser::on_header_field,
    .on_header_value = &ResponseParser::on_header_value,
    .on_headers_complete = nullptr,
    .on_body = &ResponseParser::on_body,
    .on_message_complete = &ResponseParser::on_complete,
    .on_chunk_header = nullptr,
    .on_chunk_complete = nullptr,
};

Status send_all(int fd, std::string_view data, Clock::time_point deadline, const std::string& to) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (Status st = wait_for(fd, POLLOUT, deadline, "send to " + to); !st) return st;
      continue;
    }
    return sys_error(errno, "send to " + to);
  }
  return {};
}

Result<ClientResponse> exchange(int fd, const Endpoint& ep, std::string_view method,
                                std::string_view target, std::string_view body,
                                Clock::time_point deadline) {
  std::string to = ep.to_string();
  std::string req;
  req.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
  req += "host: " + (ep.unix_path.empty() ? ep.to_string() : std::string("localhost")) + "\r\n";
  req += "user-agent: ambitctl\r\nconnection: close\r\n";
  req += "content-length: " + std::to_string(body.size()) + "\r\n\r\n";
  req.append(body);
  if (Status st = send_all(fd, req, deadline, to); !st) return st.take_error();

  ResponseParser rp;
  http_parser_init(&rp.parser, HTTP_RESPONSE);
  rp.parser.data = &rp;
  char buf[16 * 1024];
  while (!rp.done) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (Status st = wait_for(fd, POLLIN, deadline, "reading the answer of " + to); !st) {
        return st.take_error();
      }
      continue;
    }
    if (n < 0) return sys_error(errno, "recv from " + to);
    // n == 0 tells the parser about EOF (ends a response framed by connection close).
    http_parser_execute(&rp.parser, &kResponseSettings, buf, static_cast<size_t>(n));
    if (rp.parser.http_errno != HPE_OK) {
      return make_error(Errc::protocol,
                        to + " answered with malformed HTTP: " +
                            http_errno_description(static_cast<http_errno>(rp.parser.http_errno)));
    }
    if (n == 0 && !rp.done) {
      return make_error(Errc::closed, to + " closed the connection before answering");
    }
  }
  return std::move(rp.resp);
}

}  // namespace

Result<Endpoint> Endpoint::parse(std::string_view text) {
  Endpoint ep;
  if (text.starts_with("unix:")) text.remove_prefix(5);
  if (text.find('/') != std::string_view::npos) {
    ep.unix_path = std::string(text);
    return ep;
  }
  auto addr = io::SocketAddress::parse(text);
  if (!addr) {
    return make_error(Errc::invalid_argument,
                      "'" + std::string(text) +
                          "' is neither a socket path nor IP:PORT (e.g. 127.0.0.1:15000)");
  }
  ep.host = addr->ip_string();
  ep.port = addr->port();
  return ep;
}

std::string Endpoint::to_string() const {
  if (!unix_path.empty()) return "unix:" + unix_path;
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

Result<ClientResponse> fetch(const Endpoint& endpoint, std::string_view method,
                             std::string_view target, std::string_view body,
                             std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  auto fd = connect_to(endpoint, deadline);
  if (!fd) return fd.take_error();
  auto r = exchange(*fd, endpoint, method, target, body, deadline);
  ::close(*fd);
  return r;
}

}  // namespace ambit::http
