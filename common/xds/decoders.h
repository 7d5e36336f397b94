// Per-type decoders: turn a resource's google.protobuf.Any into its concrete message and
// check what the data path relies on (address lengths, port ranges). A decoder's error
// rejects that one resource; the client NACKs it by name and still applies the others.
#pragma once

#include <functional>
#include <memory>
#include <string_view>

#include <google/protobuf/any.pb.h>
#include <google/protobuf/message.h>

#include "common/base/error.h"
#include "common/proto/authorization.pb.h"
#include "common/proto/workload.pb.h"

namespace ambit::xds {

using Decoded = std::shared_ptr<const google::protobuf::Message>;

// `name` is the xDS resource name (for messages); the Any's type URL was already checked
// against the subscribed type. The message says why, for an operator reading the NACK.
using ResourceDecoder = std::function<Result<Decoded>(std::string_view name,
                                                      const google::protobuf::Any& any)>;

// Parses `any` as T, then runs `validate` (when given) on the result.
template <class T>
ResourceDecoder proto_decoder(std::function<Status(const T&)> validate = {}) {
  return [validate = std::move(validate)](std::string_view,
                                          const google::protobuf::Any& any) -> Result<Decoded> {
    auto msg = std::make_shared<T>();
    if (!msg->ParseFromString(any.value())) {
      return make_error(Errc::protocol, "cannot decode " + std::string(T::descriptor()->full_name()) +
                                            " (" + std::to_string(any.value().size()) + " bytes)");
    }
    if (validate) {
      if (Status s = validate(*msg); !s) return s.take_error();
    }
    return Decoded(std::move(msg));
  };
}

// What ztunnel needs to trust an Address: a workload or a service, with every IP 4 or 16
// bytes and every port within 1..65535 (0 allowed where "unset" is meaningful).
Status validate_address(const istio::workload::Address& address);
// Principals and IP blocks an L4 policy can be evaluated with.
Status validate_authorization(const istio::security::Authorization& authorization);

// The decoder for one of the type URLs of ARCHITECTURE §5 (validating where the data path
// needs it) or, for any other type, for a message compiled into this program.
// Errc::not_found when the type is unknown to this build.
Result<ResourceDecoder> decoder_for_type(std::string_view type_url);

}  // namespace ambit::xds
