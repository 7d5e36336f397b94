#include "ztunnel/redirect/pod_registry.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/base/log.h"

namespace ambit::redirect {

namespace {

std::shared_ptr<spdlog::logger> logger() { return log::get("ztunnel"); }

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return sys_error(errno, "reading " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) parts.emplace_back(path.substr(i, j - i));
    i = j + 1;
  }
  return parts;
}

// A cgroup path component that names a Kubernetes pod: "pod<uid>" (cgroupfs driver) or
// "...-pod<uid>.slice" (systemd driver).
bool is_pod_component(std::string_view c) {
  size_t at = c.rfind("pod");
  if (at == std::string_view::npos) return false;
  if (at != 0 && c[at - 1] != '-') return false;
  std::string_view rest = c.substr(at + 3);
  if (ends_with(rest, ".slice")) rest.remove_suffix(6);
  return rest.size() >= 32;  // a uid, with '-' or '_' separators
}

}  // namespace

Result<PodInfo> parse_pod_json(std::string_view text) {
  auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object())
    return make_error(Errc::invalid_argument, "not a JSON object");
  PodInfo pod;
  auto field = [&](const char* name, std::string& out, bool required) -> Status {
    auto it = doc.find(name);
    if (it == doc.end() || !it->is_string() || it->get<std::string>().empty()) {
      if (!required) return {};
      return make_error(Errc::invalid_argument, fmt::format("\"{}\" missing or not a string", name));
    }
    out = it->get<std::string>();
    return {};
  };
  for (auto s : {field("uid", pod.uid, false), field("namespace", pod.namespace_name, true),
                 field("name", pod.name, true), field("ip", pod.ip, true),
                 field("netns", pod.netns, true), field("cgroup", pod.cgroup, true)}) {
    if (!s) return s.take_error();
  }
  return pod;
}

// ---- directory ------------------------------------------------------------------------------

Result<std::unique_ptr<DirectoryPodRegistry>> DirectoryPodRegistry::open(std::string dir) {
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) return sys_error(errno, "inotify_init1");
  UniqueFd inotify(fd);
  // The lab creates the directory when it starts; a ztunnel started first waits for it.
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return make_error(Errc::not_found, fmt::format("pod registry directory {} does not exist", dir));
  uint32_t events = IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE |
                    IN_DELETE_SELF | IN_MOVE_SELF;
  if (::inotify_add_watch(fd, dir.c_str(), events) < 0)
    return sys_error(errno, "watching the pod registry directory " + dir);
  return std::unique_ptr<DirectoryPodRegistry>(
      new DirectoryPodRegistry(std::move(dir), std::move(inotify)));
}

Result<std::vector<PodInfo>> DirectoryPodRegistry::pods() {
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) return sys_error(errno, "listing the pod registry directory " + dir_);
  std::vector<std::string> files;
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name.empty() || name[0] == '.' || !ends_with(name, ".json")) continue;
    files.emplace_back(name);
  }
  ::closedir(d);
  std::sort(files.begin(), files.end());
  std::vector<PodInfo> out;
  for (const auto& name : files) {
    std::string path = dir_ + "/" + name;
    auto text = read_file(path);
    if (!text) continue;  // removed between readdir and open
    auto pod = parse_pod_json(*text);
    if (!pod) {
      logger()->warn("pod registry: skipping {}: {}", path, pod.error().message);
      continue;
    }
    out.push_back(std::move(*pod));
  }
  return out;
}

bool DirectoryPodRegistry::drain_changes() {
  alignas(inotify_event) char buf[4096];
  bool changed = false;
  for (;;) {
    ssize_t n = ::read(inotify_.get(), buf, sizeof buf);
    if (n <= 0) break;
    changed = true;
  }
  return changed;
}

// ---- /proc scan -----------------------------------------------------------------------------

std::string pod_cgroup_path(std::string_view path) {
  auto parts = split_path(path);
  size_t keep = parts.size();
  for (size_t i = 0; i < parts.size(); ++i) {
    if (is_pod_component(parts[i])) keep = i + 1;
  }
  std::string out;
  for (size_t i = 0; i < keep; ++i) out += "/" + parts[i];
  return out.empty() ? "/" : out;
}

std::string cgroup2_mount() {
  std::ifstream mounts("/proc/mounts");
  std::string line;
  while (std::getline(mounts, line)) {
    std::istringstream in(line);
    std::string dev, dir, type;
    in >> dev >> dir >> type;
    if (type == "cgroup2") return dir;
  }
  return {};
}

ProcPodRegistry::ProcPodRegistry(std::function<std::vector<PodQuery>()> wanted,
                                 std::string proc_root)
    : wanted_(std::move(wanted)), proc_root_(std::move(proc_root)) {}

Result<std::vector<PodInfo>> ProcPodRegistry::pods() {
  std::map<std::string, const PodQuery*> by_ip;
  std::vector<PodQuery> wanted = wanted_();
  for (const auto& q : wanted) by_ip[q.ip] = &q;
  std::vector<PodInfo> out;
  if (by_ip.empty()) return out;
  std::string mount = cgroup2_mount();
  if (mount.empty()) return make_error(Errc::unsupported, "no cgroup v2 hierarchy is mounted");

  struct stat self {};
  ::stat((proc_root_ + "/self/ns/net").c_str(), &self);
  std::set<ino_t> seen{self.st_ino};  // ztunnel's own netns hosts no pod
  DIR* d = ::opendir(proc_root_.c_str());
  if (d == nullptr) return sys_error(errno, "listing " + proc_root_);
  while (dirent* e = ::readdir(d)) {
    std::string pid = e->d_name;
    if (pid.empty() || !std::all_of(pid.begin(), pid.end(), ::isdigit)) continue;
    std::string ns_path = proc_root_ + "/" + pid + "/ns/net";
    struct stat st {};
    if (::stat(ns_path.c_str(), &st) != 0 || !seen.insert(st.st_ino).second) continue;
    auto netns = open_netns(ns_path);
    if (!netns) continue;  // the process exited
    auto addresses = addresses_in_netns(netns->get());
    if (!addresses) continue;
    for (const auto& address : *addresses) {
      auto it = by_ip.find(address);
      if (it == by_ip.end()) continue;
      auto text = read_file(proc_root_ + "/" + pid + "/cgroup");
      if (!text) break;
      std::string v2;
      std::istringstream lines(*text);
      for (std::string line; std::getline(lines, line);) {
        if (line.rfind("0::", 0) == 0) v2 = line.substr(3);
      }
      if (v2.empty()) break;
      const PodQuery& q = *it->second;
      out.push_back(PodInfo{q.uid, q.namespace_name, q.name, q.ip, ns_path,
                            mount + pod_cgroup_path(v2)});
      by_ip.erase(it);
      break;
    }
    if (by_ip.empty()) break;
  }
  ::closedir(d);
  return out;
}

}  // namespace ambit::redirect
