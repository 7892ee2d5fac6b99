// The one server interceptor of the scheduler's and the worker's gRPC servers: every call of a
// qdm.v1 service is timed and counted by method and code (RpcMetrics: qdm_requests_total,
// qdm_request_duration_seconds), and every status any method answers is made safe on its way
// out (status_message.h: bounded, no server paths). Handlers only return their status.
//
// Authentication stays a first line in each handler (TokenAuth::check with the method's scope):
// a synchronous gRPC C++ server cannot refuse a call from an interceptor (no server-side
// hijacking; cancelling answers CANCELLED and the handler still runs).
#pragma once

#include <grpcpp/server_builder.h>

#include "service/metrics.h"

namespace qdm::service {

// Installs the interceptor on `builder`; `metrics` must outlive the server.
void add_rpc_interceptor(grpc::ServerBuilder& builder, RpcMetrics& metrics);

}  // namespace qdm::service
