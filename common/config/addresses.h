// Workloads and Services as istiod publishes them for ambient
// (type.googleapis.com/istio.workload.Address):
//  - one Workload per Pod with an IP (hostNetwork pods are left out), resource name and uid
//    "<cluster>//v1/Pod/<ns>/<name>"; tunnel HBONE when the pod is enrolled (namespace label
//    istio.io/dataplane-mode=ambient, or the same label on the pod, unless the pod says none);
//  - one Service per Service, resource name "<ns>/<name>.<ns>.svc.<suffix>", each port with
//    the application protocol Istio's protocol selection gives it (appProtocol, else the
//    port name's prefix before '-'; UNKNOWN when neither names a protocol).
#pragma once

#include <map>
#include <string>

#include "common/config/model.h"
#include "common/config/translate_options.h"
#include "common/proto/workload.pb.h"

namespace ambit::config {

// Resource name -> Address, for every pod and service of the snapshot.
std::map<std::string, istio::workload::Address> translate_addresses(const ConfigSnapshot& snap,
                                                                    const TranslateOptions& opts);

istio::workload::Workload translate_pod(const ConfigSnapshot& snap, const Pod& pod,
                                        const TranslateOptions& opts);
istio::workload::Service translate_service(const ConfigSnapshot& snap, const Service& svc,
                                           const TranslateOptions& opts);

std::string workload_uid(const Pod& pod, const TranslateOptions& opts);
bool pod_in_ambient(const ConfigSnapshot& snap, const Pod& pod);

// Istio's explicit protocol selection for one Service port: `appProtocol` wins over the
// name, and only the prefix before the first '-' counts ("http-web" -> http);
// case-insensitive. http, http-proxy, grpc-web and
// kubernetes.io/ws are HTTP11; http2 and kubernetes.io/h2c HTTP2; grpc GRPC; tcp, mongo,
// mysql, redis TCP; https, tls and kubernetes.io/wss TLS; anything else
// UNKNOWN (the proxy detects).
istio::workload::AppProtocol port_app_protocol(const ServicePort& port);

// Raw network-order bytes of an IP address ("" when not an address).
std::string ip_bytes(const std::string& ip);

}  // namespace ambit::config
