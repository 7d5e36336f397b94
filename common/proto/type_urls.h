// The type URLs of the resources Ambit's control plane serves (ARCHITECTURE §5). One copy,
// shared by the control plane, the xDS client and the config model. Char arrays convert to
// both const char* and std::string_view, so every caller can use them as it needs.
#pragma once

namespace ambit::type_urls {

inline constexpr char kAddress[] = "type.googleapis.com/istio.workload.Address";
inline constexpr char kAuthorization[] = "type.googleapis.com/istio.security.Authorization";
inline constexpr char kVirtualService[] =
    "type.googleapis.com/istio.networking.v1alpha3.VirtualService";
inline constexpr char kDestinationRule[] =
    "type.googleapis.com/istio.networking.v1alpha3.DestinationRule";
inline constexpr char kAuthorizationPolicy[] =
    "type.googleapis.com/istio.security.v1beta1.AuthorizationPolicy";
inline constexpr char kRequestAuthentication[] =
    "type.googleapis.com/istio.security.v1beta1.RequestAuthentication";
inline constexpr char kLocalRateLimit[] = "type.googleapis.com/ambit.v1.LocalRateLimit";

}  // namespace ambit::type_urls
