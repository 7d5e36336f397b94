// Logging: one spdlog logger per component ("ztunnel", "waypoint", "xds", "echo", ...),
// all writing to stderr in one format, text for people or JSON lines for collectors.
// Levels can be changed at run time (the admin socket's logging?level=).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

#include "common/base/error.h"

namespace ambit::log {

enum class Format { text, json };

// Configure every logger (existing and future). Call once at start; safe to call again.
void init(Format format, spdlog::level::level_enum level);

// Parses "trace|debug|info|warn|error|critical|off".
Result<spdlog::level::level_enum> parse_level(std::string_view name);
Result<Format> parse_format(std::string_view name);

// The logger of a component, created on first use with the configured format and level.
std::shared_ptr<spdlog::logger> get(const std::string& component);

// Change the level of one component, or of all when component is empty.
Status set_level(std::string_view component, spdlog::level::level_enum level);

// Batching of the per-request loggers ("access"): on a thread that enabled it (each event
// loop thread, while it runs), their lines collect in a per-thread buffer that
// flush_thread_batch() writes with one write(2) (the loop calls it before it waits, so a
// line is never held while the thread sleeps); a buffer past 64 KiB is written at once.
// On other threads every line is written as it comes. Lines of other loggers are never held.
// Returns the previous setting (a nested loop run restores it).
bool set_thread_batching(bool on);
void flush_thread_batch();

// Escape a string for embedding inside a JSON string literal (no surrounding quotes).
std::string json_escape(std::string_view s);

}  // namespace ambit::log
