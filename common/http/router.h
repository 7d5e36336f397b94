// Router: the route table of a small operator-facing HTTP server (admin, metrics, readiness).
// Routes match the exact path; the method decides between handlers of one path. Dispatch is a
// pure function of the table and the request, so routing is tested without sockets.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http/message.h"

namespace ambit::http {

// A handler sees the request, its path and its raw query ("level=debug", not decoded).
// Handlers run on the server's loop thread and must not block for long.
using Handler =
    std::function<Response(const Request& req, std::string_view path, std::string_view query)>;

class Router {
 public:
  // method "" accepts any method. Adding the same (method, path) again replaces the handler.
  void add(std::string method, std::string path, Handler handler, std::string help = {});

  // 404 for an unknown path, 405 (with an `allow` header) for a known path and another
  // method; HEAD is served by a GET handler (the framing drops the body).
  Response dispatch(const Request& req) const;

  struct RouteInfo {
    std::string method;
    std::string path;
    std::string help;
  };
  std::vector<RouteInfo> routes() const;

  // A plain-text index of the routes, for "/" on an admin port.
  std::string index_text() const;

 private:
  struct Route {
    std::string method;
    std::string path;
    Handler handler;
    std::string help;
  };
  std::vector<Route> routes_;
};

}  // namespace ambit::http
