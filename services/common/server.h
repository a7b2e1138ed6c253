// The gRPC server every cleave service runs: health (grpc.health.v1) and reflection
// built in, so grpcurl and Kubernetes probes work without extra wiring.
#ifndef CLEAVE_SERVICES_COMMON_SERVER_H_
#define CLEAVE_SERVICES_COMMON_SERVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/server.h"

namespace cleave {

// Starts a server on host:port with `services`; port 0 picks a free one (see *bound_port).
absl::StatusOr<std::unique_ptr<grpc::Server>> StartGrpcServer(const std::string& host, int port,
                                                              const std::vector<grpc::Service*>& services,
                                                              int* bound_port);
// Health of the whole server (service ""): SERVING once the process can take work.
void SetServing(grpc::Server* server, bool serving);

// Blocks until SIGINT or SIGTERM. Call InstallShutdownSignals first, before any thread starts,
// so every thread inherits the blocked mask and only this wait receives the signal.
void InstallShutdownSignals();
int WaitForShutdownSignal();

}  // namespace cleave

#endif  // CLEAVE_SERVICES_COMMON_SERVER_H_
