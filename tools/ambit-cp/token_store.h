// The bearer tokens ambit-cp issues: one random token per caller, kept as
// <state-dir>/tokens/<caller.token_file()> (mode 0600) so that the lab can hand each ztunnel
// its node's token and restarts keep every token valid. Tokens are only ever added: a node
// that loses its pods keeps its token, and simply may not ask for anything.
#pragma once

#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/base/error.h"
#include "tools/ambit-cp/caller.h"

namespace ambit::cp {

class TokenStore {
 public:
  explicit TokenStore(std::filesystem::path dir) : dir_(std::move(dir)) {}

  // Reads every token file already in the directory (creating the directory if needed).
  Status load();

  // Creates a token for each caller that has none yet. Returns the callers that got one.
  Result<std::vector<Caller>> ensure(const std::vector<Caller>& callers);

  // The caller a token belongs to; thread-safe.
  std::optional<Caller> lookup(const std::string& token) const;

  std::filesystem::path path_of(const Caller& caller) const { return dir_ / caller.token_file(); }

 private:
  std::filesystem::path dir_;
  mutable std::mutex mu_;
  std::map<std::string, Caller> by_token_;
  std::map<Caller, std::string> by_caller_;
};

// 32 random bytes as 64 hex digits.
Result<std::string> random_token();

}  // namespace ambit::cp
