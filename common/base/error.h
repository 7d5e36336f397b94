// Errors are values with names. Nothing on the data path throws: functions that can fail
// return Result<T>, whose error carries a named code (for counters and access logs) and a
// message written for an operator.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace ambit {

enum class Errc : uint8_t {
  ok = 0,
  invalid_argument,   // caller passed something malformed
  not_found,          // a lookup found nothing
  already_exists,
  io,                 // a system call failed (see sys_errno)
  timeout,
  cancelled,
  closed,             // the peer or the local side closed
  connection_refused,
  connection_reset,
  tls_handshake,      // TLS negotiation failed
  identity_mismatch,  // peer identity not acceptable
  protocol,           // peer violated a wire protocol
  policy_denied,
  unavailable,        // no healthy destination / upstream down
  resource_exhausted, // limits reached
  unsupported,        // the kernel or peer lacks a feature
  config,             // configuration rejected
  internal,           // should never happen
};

// Stable snake_case name of a code, used in logs, metrics labels and access records.
std::string_view errc_name(Errc c);

struct Error {
  Errc code = Errc::internal;
  std::string message;
  int sys_errno = 0;  // errno when code == io (or a wrapped system error), else 0

  std::string to_string() const;  // "<code>: <message>[ (errno N: strerror)]"
};

Error make_error(Errc code, std::string message);
// An error from a negative io_uring result or errno value; the message says what was attempted.
Error sys_error(int err, std::string_view what);

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  Result(Error e) : v_(std::in_place_index<1>, std::move(e)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(v_); }
  Error&& take_error() { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success carries nothing.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error e) : err_(std::move(e)), has_err_(true) {}

  bool ok() const { return !has_err_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return err_; }
  Error&& take_error() { return std::move(err_); }

 private:
  Error err_;
  bool has_err_ = false;
};

using Status = Result<void>;

}  // namespace ambit
