#include "service/auth.h"

#include <openssl/crypto.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

namespace qdm::service {
namespace {

Scope parse_scope(const std::string& s) {
  if (s == "read") return Scope::kRead;
  if (s == "write") return Scope::kWrite;
  throw std::runtime_error("unknown token scope '" + s + "'; use read or write");
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool equal_tokens(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

TokenAuth TokenAuth::load(const std::string& tokens_file, const std::string& tokens_env, const std::string& worker_token) {
  TokenAuth auth;
  auth.worker_token_ = worker_token;
  if (!tokens_file.empty()) {
    std::istringstream lines(read_file(tokens_file));
    std::string line;
    while (std::getline(lines, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream fields(line);
      std::string token, scope = "read";
      fields >> token >> scope;
      if (!token.empty()) auth.tokens_[token] = parse_scope(scope);
    }
  }
  std::istringstream entries(tokens_env);
  std::string entry;
  while (std::getline(entries, entry, ',')) {
    if (entry.empty()) continue;
    const auto colon = entry.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("token entries are TOKEN:SCOPE");
    auth.tokens_[entry.substr(0, colon)] = parse_scope(entry.substr(colon + 1));
  }
  return auth;
}

grpc::Status TokenAuth::check(const grpc::ServerContext& context, Scope needed) const {
  const bool open = needed == Scope::kWorker ? worker_token_.empty() : tokens_.empty();
  if (open) return grpc::Status::OK;
  const auto& md = context.client_metadata();
  const auto it = md.find("authorization");
  if (it == md.end())
    return {grpc::UNAUTHENTICATED, "this server needs a bearer token: set --token (QDM_TOKEN) or the "
                                   "'authorization: Bearer <token>' metadata"};
  const std::string value(it->second.data(), it->second.size());
  const std::string prefix = "Bearer ";
  if (value.rfind(prefix, 0) != 0) return {grpc::UNAUTHENTICATED, "authorization metadata must be 'Bearer <token>'"};
  const std::string token = value.substr(prefix.size());
  if (needed == Scope::kWorker) {
    if (equal_tokens(token, worker_token_)) return grpc::Status::OK;
    return {grpc::UNAUTHENTICATED, "the worker token is not valid"};
  }
  for (const auto& [known, scope] : tokens_) {
    if (!equal_tokens(token, known)) continue;
    if (static_cast<int>(scope) >= static_cast<int>(needed)) return grpc::Status::OK;
    return {grpc::PERMISSION_DENIED, "this token is read-only; submitting, cancelling, sampling, uploading and "
                                     "deleting need a token with the write scope"};
  }
  return {grpc::UNAUTHENTICATED, "the bearer token is not valid"};
}

std::string request_id(const grpc::ServerContext& context) {
  const auto& md = context.client_metadata();
  const auto it = md.find("x-request-id");
  if (it != md.end() && it->second.size() <= 128) return std::string(it->second.data(), it->second.size());
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

void add_bearer(grpc::ClientContext& context, const std::string& token) {
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
}

std::shared_ptr<grpc::ServerCredentials> server_credentials(const TlsFiles& tls) {
  if (tls.cert.empty() && tls.key.empty()) return grpc::InsecureServerCredentials();
  if (tls.cert.empty() || tls.key.empty()) throw std::runtime_error("TLS needs both a certificate and a key");
  grpc::SslServerCredentialsOptions options(
      tls.ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  if (!tls.ca.empty()) options.pem_root_certs = read_file(tls.ca);
  options.pem_key_cert_pairs.push_back({read_file(tls.key), read_file(tls.cert)});
  return grpc::SslServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const TlsFiles& tls) {
  if (tls.ca.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = read_file(tls.ca);
  if (!tls.cert.empty()) {
    options.pem_cert_chain = read_file(tls.cert);
    options.pem_private_key = read_file(tls.key);
  }
  return grpc::SslCredentials(options);
}

grpc::ChannelArguments channel_arguments(const TlsFiles& tls, int max_receive_bytes) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(max_receive_bytes);
  if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
  return args;
}

}  // namespace qdm::service
