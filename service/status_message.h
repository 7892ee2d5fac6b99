// Every status the service answers, made safe to send in one place: the message bounded to
// kMaxStatusMessage bytes and every absolute server path in it replaced by "<server path>".
// The RPC interceptor (rpc_interceptor.h) applies it to every answer of every method, so no
// handler can echo unbounded input or a path of the machine it runs on.
#pragma once

#include <grpcpp/support/status.h>

#include <string>
#include <string_view>

namespace qdm::service {

constexpr size_t kMaxStatusMessage = 1024;

std::string safe_status_message(std::string_view message);
grpc::Status safe_status(const grpc::Status& status);

}  // namespace qdm::service
