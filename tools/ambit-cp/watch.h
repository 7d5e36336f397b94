// Watches the config directory with inotify and calls back once per burst of changes.
//
// Writers (the lab, an editor, kubectl-like tools) replace files by writing a temporary file
// and renaming it, or write in place; both show up as IN_MOVED_TO / IN_CLOSE_WRITE, removals
// as IN_DELETE / IN_MOVED_FROM. Dotfiles are temporaries and ignored. A burst (several files
// replaced by one `apply`) is coalesced: the callback runs once the directory has been
// quiet for `debounce`. If the directory itself goes away, the watch is re-armed as soon as it
// exists again (and that counts as a change).
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <thread>

#include "common/base/error.h"

namespace ambit::cp {

class DirectoryWatch {
 public:
  using Callback = std::function<void()>;

  struct Options {
    std::chrono::milliseconds debounce{20};
    // `on_tick` runs this often while nothing happens (ambit-cp re-reports a broken config).
    std::chrono::milliseconds tick{10000};
  };

  static Result<std::unique_ptr<DirectoryWatch>> start(std::filesystem::path dir, Options opts,
                                                       Callback on_change, Callback on_tick);
  ~DirectoryWatch();

  DirectoryWatch(const DirectoryWatch&) = delete;
  DirectoryWatch& operator=(const DirectoryWatch&) = delete;

 private:
  DirectoryWatch() = default;
  void run();
  bool arm();

  std::filesystem::path dir_;
  Options opts_;
  Callback on_change_;
  Callback on_tick_;
  int inotify_fd_ = -1;
  int wake_fd_ = -1;
  int wd_ = -1;
  std::thread thread_;
};

}  // namespace ambit::cp
