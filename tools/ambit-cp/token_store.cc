#include "tools/ambit-cp/token_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include <openssl/rand.h>

namespace ambit::cp {

namespace fs = std::filesystem;

Result<std::string> random_token() {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    return make_error(Errc::internal, "the system random generator failed to produce a token");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(sizeof raw * 2);
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

// Written under a dot-name and renamed, so a reader never sees a partial token.
Status write_private_file(const fs::path& path, const std::string& content) {
  fs::path tmp = path.parent_path() / ("." + path.filename().string() + ".tmp");
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return sys_error(errno, "create " + tmp.string());
  ::fchmod(fd, 0600);  // O_CREAT's mode is filtered by the umask
  std::string line = content + "\n";
  ssize_t n = ::write(fd, line.data(), line.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(line.size())) return sys_error(err, "write " + tmp.string());
  if (::rename(tmp.c_str(), path.c_str()) != 0) return sys_error(errno, "rename to " + path.string());
  return {};
}

}  // namespace

Status TokenStore::load() {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return make_error(Errc::io, "cannot create token directory " + dir_.string() + ": " + ec.message());
  ::chmod(dir_.c_str(), 0700);
  std::lock_guard lock(mu_);
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    if (name.starts_with(".") || !entry.is_regular_file()) continue;
    auto caller = Caller::from_token_file(name);
    if (!caller) continue;
    std::ifstream in(entry.path());
    std::stringstream ss;
    ss << in.rdbuf();
    std::string token = trimmed(ss.str());
    if (token.size() < 32) continue;  // not one of ours (or truncated): replaced by ensure()
    by_token_[token] = *caller;
    by_caller_[*caller] = token;
  }
  if (ec) return make_error(Errc::io, "cannot list " + dir_.string() + ": " + ec.message());
  return {};
}

Result<std::vector<Caller>> TokenStore::ensure(const std::vector<Caller>& callers) {
  std::vector<Caller> created;
  std::lock_guard lock(mu_);
  for (const auto& c : callers) {
    if (by_caller_.contains(c)) continue;
    auto token = random_token();
    if (!token) return token.take_error();
    if (Status s = write_private_file(dir_ / c.token_file(), *token); !s) return s.take_error();
    by_token_[*token] = c;
    by_caller_[c] = *token;
    created.push_back(c);
  }
  return created;
}

std::optional<Caller> TokenStore::lookup(const std::string& token) const {
  std::lock_guard lock(mu_);
  auto it = by_token_.find(token);
  if (it == by_token_.end()) return std::nullopt;
  return it->second;
}

}  // namespace ambit::cp
