// The request as the waypoint's decisions see it: routing (route.h) and L7 authorization
// (authz/l7_authz.h) read only this view, never a socket or a codec. The I/O layer fills it
// once per request from the HTTP/1.1 or HTTP/2 head, the HBONE CONNECT that carried it
// (service VIP:port, `forwarded` client address) and the peer certificate.
//
// Invariants: header names are stored lower-case (HTTP/2 form), so lookups are
// case-insensitive; pseudo-headers are not in `headers` but in the named fields.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ambit::waypoint {

struct HeaderField {
  std::string name;  // lower-case
  std::string value;
};

// An ordered multimap of header fields with case-insensitive names.
class HeaderMap {
 public:
  HeaderMap() = default;
  HeaderMap(std::initializer_list<std::pair<std::string_view, std::string_view>> fields);

  void add(std::string_view name, std::string_view value);
  // add() for a name already in lower case (a field of another HeaderMap).
  void add_lowercase(std::string_view name, std::string_view value) {
    fields_.push_back({std::string(name), std::string(value)});
  }
  void reserve(size_t n) { fields_.reserve(n); }
  // Replaces every field of that name with one field (appended where the first one was).
  void set(std::string_view name, std::string_view value);
  void remove(std::string_view name);

  bool contains(std::string_view name) const;
  // The first value of the header, if present.
  std::optional<std::string_view> get(std::string_view name) const;
  // Every value of the header joined with "," (how Envoy matches repeated headers).
  std::optional<std::string> joined(std::string_view name) const;

  const std::vector<HeaderField>& fields() const { return fields_; }
  size_t size() const { return fields_.size(); }

 private:
  std::vector<HeaderField> fields_;
};

// The service the client addressed (the HBONE :authority VIP:port resolved in the workload
// store).
struct DestinationService {
  std::string hostname;  // FQDN, e.g. "reviews.bookinfo.svc.cluster.local"
  std::string name;      // Kubernetes Service name, e.g. "reviews"
  std::string ns;        // its namespace
  std::string vip;       // the address the client connected to (text form)
  uint32_t port = 0;     // the service port the client connected to
};

// Who is calling.
struct SourceInfo {
  // Peer identity without the scheme: "cluster.local/ns/<ns>/sa/<sa>"; empty when the
  // request arrived without a mesh identity.
  std::string principal;
  // The original client address from the HBONE `forwarded: for=` header (text form, no port).
  std::string ip;
  // The client workload's namespace and labels when the workload store knows the address.
  std::string ns;
  std::map<std::string, std::string> labels;
  bool workload_known = false;
};

struct Request {
  std::string method;           // "GET"
  std::string scheme = "http";  // :scheme (or "http" for HTTP/1.1)
  std::string authority;        // :authority or Host, as sent
  std::string path;             // :path including the query string
  HeaderMap headers;            // regular headers only
  DestinationService service;
  SourceInfo source;
  // "<iss>/<sub>" of a validated JWT; empty when the request carries none (RequestAuthentication
  // is not enforced yet, so this stays empty).
  std::string request_principal;

  // The path without "?query" (and without a "#fragment").
  std::string_view path_only() const;
  // The raw query string without '?', empty when none.
  std::string_view query() const;
  // The first value of a query parameter, percent-decoded; nullopt when the name is absent.
  std::optional<std::string> query_param(std::string_view name) const;
  // The client address Envoy would call remote.ip: the last x-forwarded-for entry when there
  // is one, else the original client address.
  std::string remote_ip() const;
};

// The namespace inside a SPIFFE-style principal ("td/ns/<ns>/sa/<sa>", with or without
// "spiffe://"); empty when it has none.
std::string_view principal_namespace(std::string_view principal);

// ASCII lower-case copy.
std::string to_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b);

}  // namespace ambit::waypoint
