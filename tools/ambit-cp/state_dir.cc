#include "tools/ambit-cp/state_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <openssl/err.h>

namespace ambit::cp {

namespace fs = std::filesystem;

Status write_file_atomically(const fs::path& path, const std::string& content, unsigned mode) {
  fs::path tmp = path.parent_path() / ("." + path.filename().string() + ".tmp");
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return sys_error(errno, "create " + tmp.string());
  ::fchmod(fd, mode);
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return sys_error(err, "write " + tmp.string());
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return sys_error(errno, "rename to " + path.string());
  return {};
}

namespace {

Result<std::string> read_file(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return make_error(Errc::io, "cannot read " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Result<RootCa> load_or_create_root(const fs::path& state_dir, const std::string& trust_domain) {
  std::error_code ec;
  fs::create_directories(state_dir, ec);
  if (ec) return make_error(Errc::io, "cannot create state directory " + state_dir.string() + ": " + ec.message());
  fs::path key_path = state_dir / "root-key.pem";
  fs::path cert_path = state_dir / "root-cert.pem";
  bool have_key = fs::exists(key_path);
  bool have_cert = fs::exists(cert_path);
  RootCa root;
  if (have_key && have_cert) {
    auto key_pem = read_file(key_path);
    if (!key_pem) return key_pem.take_error();
    auto cert_pem = read_file(cert_path);
    if (!cert_pem) return cert_pem.take_error();
    auto key = tls::key_from_pem(*key_pem);
    if (!key) return make_error(Errc::config, key_path.string() + ": " + key.error().message);
    auto cert = tls::cert_from_pem(*cert_pem);
    if (!cert) return make_error(Errc::config, cert_path.string() + ": " + cert.error().message);
    if (Status s = tls::check_key_matches_cert(**cert, **key); !s) {
      return make_error(Errc::config, cert_path.string() + " does not belong to " + key_path.string() +
                                          ": " + s.error().message);
    }
    root.key = std::move(*key);
    root.cert = std::move(*cert);
    root.cert_pem = std::move(*cert_pem);
    return root;
  }
  if (have_key || have_cert) {
    return make_error(Errc::config, "state directory " + state_dir.string() + " has only " +
                                        (have_key ? "root-key.pem" : "root-cert.pem") +
                                        "; restore the other file, or remove both to create a new "
                                        "root (every issued certificate then stops being trusted)");
  }
  auto key = tls::generate_p256_key();
  if (!key) return key.take_error();
  tls::RootCaOptions opts;
  opts.organization = trust_domain;
  auto cert = tls::create_root_ca(**key, opts);
  if (!cert) return cert.take_error();
  auto key_pem = tls::key_to_pem(**key);
  if (!key_pem) return key_pem.take_error();
  auto cert_pem = tls::cert_to_pem(**cert);
  if (!cert_pem) return cert_pem.take_error();
  // The key first: a root-cert.pem without its key would be refused on the next start.
  if (Status s = write_file_atomically(key_path, *key_pem, 0600); !s) return s.take_error();
  if (Status s = write_file_atomically(cert_path, *cert_pem, 0644); !s) return s.take_error();
  root.key = std::move(*key);
  root.cert = std::move(*cert);
  root.cert_pem = std::move(*cert_pem);
  root.created = true;
  return root;
}

const std::vector<std::string>& serving_dns_names() {
  static const std::vector<std::string> names = {"ambit-cp", "istiod.istio-system.svc"};
  return names;
}

std::vector<std::string> serving_ips(const std::vector<ListenAddress>& listen) {
  std::vector<std::string> out;
  auto add = [&out](const std::string& ip) {
    for (const auto& have : out) {
      if (have == ip) return;
    }
    out.push_back(ip);
  };
  for (const auto& l : listen) {
    if (l.ip == "0.0.0.0") {
      add("127.0.0.1");
    } else if (l.ip == "::") {
      add("::1");
    } else {
      add(l.ip);
    }
  }
  return out;
}

namespace {

std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

Status add_extension(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  if (ext == nullptr) {
    return make_error(Errc::internal, "cannot build extension " + value + ": " + openssl_errors());
  }
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return make_error(Errc::internal, "cannot add extension " + value);
  return {};
}

}  // namespace

Result<ServingCredentials> issue_serving_certificate(const RootCa& root,
                                                     const std::vector<ListenAddress>& listen) {
  auto key = tls::generate_p256_key();
  if (!key) return key.take_error();
  tls::X509Ptr cert(X509_new());
  if (!cert) return make_error(Errc::internal, "out of memory");
  X509* c = cert.get();
  X509_set_version(c, 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return make_error(Errc::internal, "random serial failed");
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  ASN1_INTEGER* sn = BN_to_ASN1_INTEGER(bn, nullptr);
  X509_set_serialNumber(c, sn);
  ASN1_INTEGER_free(sn);
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(c), -60);
  X509_gmtime_adj(X509_getm_notAfter(c), 365L * 24 * 3600);
  X509_NAME* subject = X509_NAME_new();
  X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("ambit-cp"), -1, -1, 0);
  X509_set_subject_name(c, subject);
  X509_NAME_free(subject);
  X509_set_issuer_name(c, X509_get_subject_name(root.cert.get()));
  X509_set_pubkey(c, key->get());

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, root.cert.get(), c, nullptr, nullptr, 0);
  std::string san;
  for (const auto& dns : serving_dns_names()) san += (san.empty() ? "" : ",") + ("DNS:" + dns);
  for (const auto& ip : serving_ips(listen)) san += ",IP:" + ip;
  for (auto [nid, value] : std::initializer_list<std::pair<int, std::string>>{
           {NID_basic_constraints, "critical,CA:FALSE"},
           {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
           {NID_ext_key_usage, "serverAuth"},
           {NID_subject_key_identifier, "hash"},
           {NID_authority_key_identifier, "keyid:always"},
           {NID_subject_alt_name, san}}) {
    if (Status s = add_extension(c, &ctx, nid, value); !s) return s.take_error();
  }
  if (X509_sign(c, root.key.get(), EVP_sha256()) <= 0) {
    return make_error(Errc::internal, "signing the serving certificate failed: " + openssl_errors());
  }
  ServingCredentials out;
  auto key_pem = tls::key_to_pem(**key);
  if (!key_pem) return key_pem.take_error();
  auto cert_pem = tls::cert_to_pem(*c);
  if (!cert_pem) return cert_pem.take_error();
  out.key_pem = std::move(*key_pem);
  out.cert_pem = std::move(*cert_pem);
  return out;
}

}  // namespace ambit::cp
