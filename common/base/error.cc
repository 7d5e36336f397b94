#include "common/base/error.h"

#include <cerrno>
#include <cstring>

namespace ambit {

std::string_view errc_name(Errc c) {
  switch (c) {
    case Errc::ok: return "ok";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::not_found: return "not_found";
    case Errc::already_exists: return "already_exists";
    case Errc::io: return "io";
    case Errc::timeout: return "timeout";
    case Errc::cancelled: return "cancelled";
    case Errc::closed: return "closed";
    case Errc::connection_refused: return "connection_refused";
    case Errc::connection_reset: return "connection_reset";
    case Errc::tls_handshake: return "tls_handshake";
    case Errc::identity_mismatch: return "identity_mismatch";
    case Errc::protocol: return "protocol";
    case Errc::policy_denied: return "policy_denied";
    case Errc::unavailable: return "unavailable";
    case Errc::resource_exhausted: return "resource_exhausted";
    case Errc::unsupported: return "unsupported";
    case Errc::config: return "config";
    case Errc::internal: return "internal";
  }
  return "unknown";
}

std::string Error::to_string() const {
  std::string s(errc_name(code));
  s += ": ";
  s += message;
  if (sys_errno != 0) {
    s += " (errno ";
    s += std::to_string(sys_errno);
    s += ": ";
    s += std::strerror(sys_errno);
    s += ")";
  }
  return s;
}

Error make_error(Errc code, std::string message) { return Error{code, std::move(message), 0}; }

Error sys_error(int err, std::string_view what) {
  if (err < 0) err = -err;
  Errc code = Errc::io;
  switch (err) {
    case ETIMEDOUT: code = Errc::timeout; break;
    case ECANCELED: code = Errc::cancelled; break;
    case ECONNREFUSED: code = Errc::connection_refused; break;
    case ECONNRESET:
    case EPIPE: code = Errc::connection_reset; break;
    case EINVAL: code = Errc::invalid_argument; break;
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case ENOBUFS: code = Errc::resource_exhausted; break;
    case EOPNOTSUPP:
    case ENOSYS: code = Errc::unsupported; break;
    default: break;
  }
  return Error{code, std::string(what), err};
}

}  // namespace ambit
