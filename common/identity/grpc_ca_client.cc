#include "common/identity/grpc_ca_client.h"

#include <grpcpp/grpcpp.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include "common/base/log.h"
#include "common/proto/ca.grpc.pb.h"

namespace ambit::identity {
namespace {

constexpr const char* kImpersonatedIdentityKey = "ImpersonatedIdentity";

std::string_view grpc_code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

Errc errc_of(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE: return Errc::unavailable;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return Errc::timeout;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED: return Errc::policy_denied;
    case grpc::StatusCode::INVALID_ARGUMENT: return Errc::invalid_argument;
    case grpc::StatusCode::CANCELLED: return Errc::cancelled;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return Errc::resource_exhausted;
    case grpc::StatusCode::UNIMPLEMENTED: return Errc::unsupported;
    default: return Errc::protocol;
  }
}

// The token file is re-read on every call because its owner replaces it while we run
// (kubelet rotates projected tokens; ambit-lab rewrites node tokens).
Result<std::string> read_token(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return sys_error(errno, "open the CA token file " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  std::string token = buf.str();
  const char* space = " \t\r\n";
  token.erase(token.find_last_not_of(space) + 1);
  token.erase(0, token.find_first_not_of(space));
  if (token.empty())
    return make_error(Errc::config, "the CA token file " + path + " is empty");
  return token;
}

}  // namespace

struct GrpcCaClient::Impl {
  GrpcCaOptions opts;
  const Clock* clock = nullptr;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<istio::v1::auth::IstioCertificateService::Stub> stub;
};

GrpcCaClient::GrpcCaClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrpcCaClient::~GrpcCaClient() = default;

Result<std::unique_ptr<GrpcCaClient>> GrpcCaClient::create(GrpcCaOptions opts, const Clock& clock) {
  if (opts.address.empty())
    return make_error(Errc::config, "no CA address configured (want host:port, e.g. istiod.istio-system.svc:15012)");
  if (opts.root_cert_pem.empty())
    return make_error(Errc::config, "no root certificate to verify the CA at " + opts.address);
  if (auto roots = tls::chain_from_pem(opts.root_cert_pem); !roots)
    return make_error(Errc::config, "the CA root certificate does not parse: " + roots.error().message);
  if (opts.validity.count() <= 0)
    return make_error(Errc::config, "the requested certificate validity must be positive");

  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = opts.root_cert_pem;
  grpc::ChannelArguments args;
  if (!opts.tls_server_name.empty()) args.SetSslTargetNameOverride(opts.tls_server_name);
  // gRPC's own reconnect backoff reaches two minutes by default; the certificate manager
  // retries on its own schedule (at most 30 s apart) and wants each retry to really dial.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 30000);

  auto impl = std::make_unique<Impl>();
  impl->channel = grpc::CreateCustomChannel(opts.address, grpc::SslCredentials(ssl), args);
  impl->stub = istio::v1::auth::IstioCertificateService::NewStub(impl->channel);
  impl->opts = std::move(opts);
  impl->clock = &clock;
  return std::unique_ptr<GrpcCaClient>(new GrpcCaClient(std::move(impl)));
}

Result<IssuedCertificate> GrpcCaClient::fetch(const tls::SpiffeId& identity, const EVP_PKEY& key) {
  const GrpcCaOptions& o = impl_->opts;
  const std::string id = identity.to_string();
  auto csr = tls::create_csr(key, id);
  if (!csr) return csr.take_error();

  istio::v1::auth::IstioCertificateRequest req;
  req.set_csr(*csr);
  req.set_validity_duration(o.validity.count());
  if (!o.own_identity || !(*o.own_identity == identity))
    (*req.mutable_metadata()->mutable_fields())[kImpersonatedIdentityKey].set_string_value(id);

  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + o.timeout);
  if (!o.token_path.empty()) {
    auto token = read_token(o.token_path);
    if (!token) return token.take_error();
    ctx.AddMetadata("authorization", "Bearer " + *token);
  }
  if (!o.cluster_id.empty()) ctx.AddMetadata("clusterid", o.cluster_id);

  istio::v1::auth::IstioCertificateResponse resp;
  grpc::Status st = impl_->stub->CreateCertificate(&ctx, req, &resp);
  if (!st.ok()) {
    std::string msg = "CreateCertificate for " + id + " at CA " + o.address + " failed: " +
                      std::string(grpc_code_name(st.error_code())) + ": " + st.error_message();
    if (st.error_code() == grpc::StatusCode::UNAUTHENTICATED && !o.token_path.empty())
      msg += " (is the token in " + o.token_path + " current?)";
    return make_error(errc_of(st.error_code()), std::move(msg));
  }
  std::vector<std::string> chain(resp.cert_chain().begin(), resp.cert_chain().end());
  auto issued = accept_ca_response(identity, key, chain, impl_->clock->now());
  if (!issued) {
    Error e = issued.take_error();
    e.message = "CA " + o.address + ": " + e.message;
    return e;
  }
  log::get("identity")->debug("CA {} issued serial {} for {}", o.address, issued->leaf.serial_hex, id);
  return issued;
}

}  // namespace ambit::identity
