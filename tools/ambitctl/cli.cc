#include "tools/ambitctl/cli.h"

#include <cstdio>
#include <set>

#include "common/http/client.h"

namespace ambit::ambitctl {
namespace {

using nlohmann::json;

// Commands that show one config_dump section.
const std::set<std::string> kSectionCommands = {
    "workloads", "services", "policies", "certificates", "connections",
    "routes",    "clusters", "endpoints"};

void out(const std::string& s) { std::fwrite(s.data(), 1, s.size(), stdout); }

int fail(const std::string& message, int code = 1) {
  std::fprintf(stderr, "ambitctl: %s\n", message.c_str());
  return code;
}

Result<http::ClientResponse> call(const Options& o, const char* method, const std::string& target) {
  auto ep = http::Endpoint::parse(o.endpoint);
  if (!ep) return ep.take_error();
  auto r = http::fetch(*ep, method, target, {}, std::chrono::milliseconds(o.timeout_ms));
  if (!r) {
    Error e = r.take_error();
    if (!ep->unix_path.empty()) {
      e.message += " (is the proxy running on this node, and are you root? the socket is 0600)";
    }
    return e;
  }
  return r;
}

Result<json> call_json(const Options& o, const char* method, const std::string& target) {
  auto r = call(o, method, target);
  if (!r) return r.take_error();
  if (r->status != 200) {
    return make_error(Errc::unavailable, method + std::string(" ") + target + " answered " +
                                             std::to_string(r->status) + ": " + r->body);
  }
  json j = json::parse(r->body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return make_error(Errc::protocol, target + " did not answer with JSON");
  }
  return j;
}

int show_section(const Options& o) {
  auto dump = call_json(o, "GET", "/config_dump");
  if (!dump) return fail(dump.error().message);
  const std::string& section = o.command;
  if (!dump->contains(section)) {
    return fail("this proxy's config_dump has no '" + section +
                "' section (routes, clusters and endpoints come from waypoints)");
  }
  out(render(section, (*dump)[section], o.output));
  return 0;
}

int log_level(const Options& o) {
  std::string target = "/logging";
  const char* method = "GET";
  if (!o.args.empty()) {
    method = "POST";
    std::string query;
    for (const std::string& a : o.args) {
      // "debug" sets every component; "xds=debug" one of them.
      query += (query.empty() ? "" : "&") + (a.find('=') == std::string::npos ? "level=" + a : a);
    }
    target += "?" + query;
  }
  auto r = call(o, method, target);
  if (!r) return fail(r.error().message);
  if (r->status != 200) return fail("log level not changed: " + r->body);
  json j = json::parse(r->body, nullptr, false);
  if (j.is_discarded()) return fail("/logging did not answer with JSON");
  out(o.output == OutputFormat::table ? render_log_levels(j) : render("logging", j, o.output));
  return 0;
}

}  // namespace

std::string usage() {
  return "usage: ambitctl [--socket PATH | --admin HOST:PORT] [-o table|json|yaml] COMMAND\n"
         "\n"
         "Reads and changes a proxy through its node-local admin socket (default " +
         std::string(kDefaultSocket) +
         ").\n"
         "\n"
         "commands:\n"
         "  workloads      workloads known to the proxy (NAMESPACE POD-NAME ADDRESS NODE ...)\n"
         "  services       services and their VIPs, waypoints and endpoint counts\n"
         "  policies       L4 authorization policies\n"
         "  certificates   workload certificates held by the proxy\n"
         "  connections    open proxied connections\n"
         "  routes | clusters | endpoints   waypoint state\n"
         "  config-dump    the whole config_dump (JSON unless -o yaml)\n"
         "  log-level [LEVEL | COMPONENT=LEVEL ...]   show or change log levels\n"
         "  stats          metrics in Prometheus text format\n"
         "  ready          readiness: exit 0 when ready, 1 otherwise\n";
}

Result<Options> parse_args(const std::vector<std::string>& argv) {
  Options o;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    auto value = [&](const char* flag) -> Result<std::string> {
      if (i + 1 >= argv.size()) {
        return make_error(Errc::invalid_argument, std::string(flag) + " needs a value");
      }
      return argv[++i];
    };
    if (o.command.empty() && (a == "--socket" || a == "--admin" || a == "-s")) {
      auto v = value(a.c_str());
      if (!v) return v.take_error();
      o.endpoint = *v;
    } else if (a == "-o" || a == "--output") {
      auto v = value("-o");
      if (!v) return v.take_error();
      auto f = parse_output_format(*v);
      if (!f) return f.take_error();
      o.output = *f;
      o.output_set = true;
    } else if (a.starts_with("-o") && a.size() > 2 && o.command.empty()) {
      auto f = parse_output_format(a.substr(2));
      if (!f) return f.take_error();
      o.output = *f;
      o.output_set = true;
    } else if (a == "--timeout-ms") {
      auto v = value("--timeout-ms");
      if (!v) return v.take_error();
      o.timeout_ms = std::atoi(v->c_str());
    } else if (a == "-h" || a == "--help") {
      o.command = "help";
    } else if (o.command.empty()) {
      if (a.starts_with("-")) return make_error(Errc::invalid_argument, "unknown flag " + a);
      o.command = a;
    } else {
      o.args.push_back(a);
    }
  }
  if (o.command.empty()) return make_error(Errc::invalid_argument, "no command given");
  return o;
}

int run(const Options& o) {
  if (o.command == "help") {
    out(usage());
    return 0;
  }
  if (kSectionCommands.count(o.command)) return show_section(o);
  if (o.command == "config-dump") {
    auto dump = call_json(o, "GET", "/config_dump");
    if (!dump) return fail(dump.error().message);
    out(render("config_dump", *dump, o.output == OutputFormat::yaml ? OutputFormat::yaml
                                                                    : OutputFormat::json));
    return 0;
  }
  if (o.command == "log-level") return log_level(o);
  if (o.command == "stats") {
    auto r = call(o, "GET", "/stats");
    if (!r) return fail(r.error().message);
    out(r->body);
    return r->status == 200 ? 0 : 1;
  }
  if (o.command == "ready") {
    auto r = call(o, "GET", "/healthz/ready");
    if (!r) return fail(r.error().message);
    out(r->body);
    return r->status == 200 ? 0 : 1;
  }
  return fail("unknown command '" + o.command + "'\n" + usage(), 2);
}

}  // namespace ambit::ambitctl
