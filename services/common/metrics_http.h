// Serves GET /metrics (Prometheus text format) for a registry, on its own thread.
//
// Why not prometheus-cpp's Exposer: Debian builds its civetweb with 100 KiB thread stacks,
// and glibc carves every loaded library's static TLS out of each thread's stack. OpenBLAS
// alone takes 60 KiB of it, so in the worker processes (OpenBLAS + UCX) a scrape overflowed
// the civetweb thread's stack and killed the worker. One plain thread with a normal stack
// answers Prometheus's few requests a second just as well.
#ifndef CLEAVE_SERVICES_COMMON_METRICS_HTTP_H_
#define CLEAVE_SERVICES_COMMON_METRICS_HTTP_H_

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "prometheus/registry.h"

namespace cleave {

class MetricsHttpServer {
 public:
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& host, int port, std::shared_ptr<prometheus::Registry> registry);
  ~MetricsHttpServer();

 private:
  MetricsHttpServer(int fd, std::shared_ptr<prometheus::Registry> registry)
      : fd_(fd), registry_(std::move(registry)) {}
  void Serve();
  void Answer(int client);

  const int fd_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace cleave

#endif  // CLEAVE_SERVICES_COMMON_METRICS_HTTP_H_
