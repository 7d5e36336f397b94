#include "common/tls/openssl_error.h"

#include <openssl/err.h>

namespace ambit::tls::detail {

std::string drain_openssl_errors() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    const char* reason = ERR_reason_error_string(e);
    if (!out.empty()) out += "; ";
    if (reason != nullptr) {
      out += reason;
    } else {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      out += buf;
    }
  }
  return out;
}

Error openssl_error(Errc code, std::string_view what) {
  std::string msg(what);
  std::string detail = drain_openssl_errors();
  if (!detail.empty()) {
    msg += ": ";
    msg += detail;
  }
  return make_error(code, std::move(msg));
}

}  // namespace ambit::tls::detail
