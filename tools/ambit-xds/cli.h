// What ambit-xds does, as functions over an XdsClient so that tests run it in-process
// against a scripted server; main.cc only adds flags, signals and stdout.
#pragma once

#include <functional>
#include <string>

#include "common/base/error.h"
#include "common/xds/client.h"
#include "tools/ambit-xds/config.h"

namespace ambit::xds_cli {

using LineSink = std::function<void(const std::string& line)>;

// The client configuration the flags describe (reads the --root-cert file).
Result<xds::XdsConfig> client_config(const Config& cfg);

// Registers every --type and subscribes to it (wildcard). Unless --once, every change is
// written to `out` as it arrives (updates, then removals), one line per resource.
Status subscribe_all(xds::XdsClient& client, const Config& cfg, LineSink out);

// --once: waits up to --timeout for the first full state of every type, then writes every
// resource, type by type in --type order, names sorted. Errc::timeout names the types that
// did not answer.
Status print_first_full_state(xds::XdsClient& client, const Config& cfg, const LineSink& out);

}  // namespace ambit::xds_cli
