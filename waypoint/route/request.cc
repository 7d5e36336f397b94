#include "waypoint/route/request.h"

#include <algorithm>
#include <cctype>

namespace ambit::waypoint {

namespace {

// ASCII only, as HTTP field names are (std::tolower would consult the locale per byte).
char lower_char(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Query strings use '+' for spaces and %XX escapes; a malformed escape stays as written.
std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 &&
               hex_value(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower_char(c);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower_char(a[i]) != lower_char(b[i])) return false;
  }
  return true;
}

HeaderMap::HeaderMap(std::initializer_list<std::pair<std::string_view, std::string_view>> fields) {
  for (const auto& [n, v] : fields) add(n, v);
}

void HeaderMap::add(std::string_view name, std::string_view value) {
  fields_.push_back({to_lower(name), std::string(value)});
}

void HeaderMap::set(std::string_view name, std::string_view value) {
  auto first = std::find_if(fields_.begin(), fields_.end(),
                            [&](const HeaderField& f) { return iequals(f.name, name); });
  if (first == fields_.end()) {
    add(name, value);
    return;
  }
  first->value = std::string(value);
  auto keep = first - fields_.begin();
  auto it = std::remove_if(fields_.begin() + keep + 1, fields_.end(),
                           [&](const HeaderField& f) { return iequals(f.name, name); });
  fields_.erase(it, fields_.end());
}

void HeaderMap::remove(std::string_view name) {
  auto it = std::remove_if(fields_.begin(), fields_.end(),
                           [&](const HeaderField& f) { return iequals(f.name, name); });
  fields_.erase(it, fields_.end());
}

bool HeaderMap::contains(std::string_view name) const { return get(name).has_value(); }

std::optional<std::string_view> HeaderMap::get(std::string_view name) const {
  for (const auto& f : fields_) {
    if (iequals(f.name, name)) return std::string_view(f.value);
  }
  return std::nullopt;
}

std::optional<std::string> HeaderMap::joined(std::string_view name) const {
  std::optional<std::string> out;
  for (const auto& f : fields_) {
    if (!iequals(f.name, name)) continue;
    if (out) {
      out->push_back(',');
      out->append(f.value);
    } else {
      out = f.value;
    }
  }
  return out;
}

std::string_view Request::path_only() const {
  std::string_view p = path;
  size_t cut = p.find_first_of("?#");
  return cut == std::string_view::npos ? p : p.substr(0, cut);
}

std::string_view Request::query() const {
  std::string_view p = path;
  size_t q = p.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = p.substr(q + 1);
  size_t frag = rest.find('#');
  return frag == std::string_view::npos ? rest : rest.substr(0, frag);
}

std::optional<std::string> Request::query_param(std::string_view name) const {
  std::string_view q = query();
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string key = percent_decode(pair.substr(0, eq));
    if (key != name) continue;
    return eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1));
  }
  return std::nullopt;
}

std::string Request::remote_ip() const {
  auto xff = headers.joined("x-forwarded-for");
  if (xff) {
    std::string_view v = *xff;
    size_t comma = v.rfind(',');
    std::string_view last = trim(comma == std::string_view::npos ? v : v.substr(comma + 1));
    if (!last.empty()) return std::string(last);
  }
  return source.ip;
}

std::string_view principal_namespace(std::string_view principal) {
  constexpr std::string_view kMarker = "/ns/";
  size_t at = principal.find(kMarker);
  if (at == std::string_view::npos) return {};
  std::string_view rest = principal.substr(at + kMarker.size());
  size_t slash = rest.find('/');
  return slash == std::string_view::npos ? rest : rest.substr(0, slash);
}

}  // namespace ambit::waypoint
