// Transport security and bearer-token authentication for the public port, and the shared
// worker token for the worker protocol (and the scheduler's calls to workers).
//
// Tokens: `authorization: Bearer <token>` metadata. Scopes: `read` (Get, List, Watch, Models
// List/Describe) and `write` (read + Submit, Cancel, Sample, SampleStream, Upload, Delete).
// No token or an unknown one: UNAUTHENTICATED; a token without the scope: PERMISSION_DENIED.
// With no tokens configured, the API is open (as on loopback by default). grpc.health.v1 is
// never checked, so probes keep working.
#pragma once

#include <grpcpp/client_context.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>

#include <map>
#include <memory>
#include <string>

namespace qdm::service {

enum class Scope { kRead = 1, kWrite = 2, kWorker = 3 };

class TokenAuth {
 public:
  TokenAuth() = default;
  // `tokens_file`: lines "TOKEN SCOPE" ('#' comments); `tokens_env`: "TOKEN:SCOPE,..." (e.g. from
  // QDM_TOKENS); `worker_token`: the token workers and the scheduler use between themselves.
  // Throws std::runtime_error for an unreadable file or an unknown scope.
  static TokenAuth load(const std::string& tokens_file, const std::string& tokens_env, const std::string& worker_token);

  bool api_open() const { return tokens_.empty(); }
  grpc::Status check(const grpc::ServerContext& context, Scope needed) const;

 private:
  std::map<std::string, Scope> tokens_;
  std::string worker_token_;
};

// The call's request id: the caller's `x-request-id` metadata (a gateway's), else a new one.
std::string request_id(const grpc::ServerContext& context);

// Adds `authorization: Bearer <token>` to an outgoing call (nothing for an empty token).
void add_bearer(grpc::ClientContext& context, const std::string& token);

struct TlsFiles {
  std::string cert, key;  // this side's certificate chain and key (PEM)
  std::string ca;         // CA that signs the peer (server: client certificates; client: the server)
  std::string server_name;  // client only: override the name checked in the server certificate
};
// Insecure when cert/key are empty. With ca set, clients must present a certificate it signed.
std::shared_ptr<grpc::ServerCredentials> server_credentials(const TlsFiles& tls);
// Insecure when ca is empty.
std::shared_ptr<grpc::ChannelCredentials> channel_credentials(const TlsFiles& tls);
grpc::ChannelArguments channel_arguments(const TlsFiles& tls, int max_receive_bytes);

}  // namespace qdm::service
