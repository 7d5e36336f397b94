#include "common/http/router.h"

#include <utility>

namespace ambit::http {

void Router::add(std::string method, std::string path, Handler handler, std::string help) {
  for (Route& r : routes_) {
    if (r.method == method && r.path == path) {
      r.handler = std::move(handler);
      r.help = std::move(help);
      return;
    }
  }
  routes_.push_back({std::move(method), std::move(path), std::move(handler), std::move(help)});
}

Response Router::dispatch(const Request& req) const {
  auto [path, query] = split_target(req.target);
  std::string allow;
  for (const Route& r : routes_) {
    if (r.path != path) continue;
    bool method_ok = r.method.empty() || r.method == req.method ||
                     (req.method == "HEAD" && r.method == "GET");
    if (method_ok) return r.handler(req, path, query);
    if (!allow.empty()) allow += ", ";
    allow += r.method;
  }
  if (allow.empty()) {
    return make_response(404, "no such endpoint: " + std::string(path) +
                                  " (GET / lists the endpoints)\n");
  }
  Response resp = make_response(405, "method " + req.method + " not allowed on " +
                                         std::string(path) + "; use " + allow + "\n");
  resp.headers.push_back({"allow", allow});
  return resp;
}

std::vector<Router::RouteInfo> Router::routes() const {
  std::vector<RouteInfo> out;
  out.reserve(routes_.size());
  for (const Route& r : routes_) out.push_back({r.method, r.path, r.help});
  return out;
}

std::string Router::index_text() const {
  std::string out;
  for (const Route& r : routes_) {
    out += r.method.empty() ? std::string("*") : r.method;
    out += ' ';
    out += r.path;
    if (!r.help.empty()) {
      out += "\t";
      out += r.help;
    }
    out += '\n';
  }
  return out;
}

}  // namespace ambit::http
