// Prometheus metrics of a cleave service, on its own port (GET /metrics). Names and meanings
// follow vLLM's, with a cleave_ prefix, so existing dashboards translate directly. Each service
// fills what applies to it: the router the request-level latencies, workers the engine gauges,
// prefill workers the KV transfer series.
#ifndef CLEAVE_SERVICES_COMMON_METRICS_H_
#define CLEAVE_SERVICES_COMMON_METRICS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/core/engine.h"
#include "engine/sched/request.h"
#include "services/common/metrics_http.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace cleave {

class ServiceMetrics {
 public:
  // port 0: metrics are kept but not served.
  static absl::StatusOr<std::unique_ptr<ServiceMetrics>> Create(const std::string& host, int port,
                                                                const std::string& service);

  // Request-level (seconds).
  void ObserveQueueTime(double s) { queue_time_->Observe(s); }
  void ObserveTtft(double s) { ttft_->Observe(s); }
  void ObserveInterToken(double s) { itl_->Observe(s); }
  void ObserveE2e(double s) { e2e_->Observe(s); }
  void ObservePrefillTime(double s) { prefill_time_->Observe(s); }
  void AddPromptTokens(int n) { prompt_tokens_->Increment(n); }
  void AddGenerationTokens(int n) { generation_tokens_->Increment(n); }
  void CountFinished(FinishReason reason);
  void CountFailed(const std::string& code);

  // KV transfer (prefill → decode).
  void ObserveKvTransfer(double seconds, double bytes);
  void CountKvTransferFailure() { kv_transfer_failures_->Increment(); }

  // Engine gauges, from a load report.
  void SetEngineLoad(const Engine::Load& load);
  void SetWorkers(int prefill, int decode);

  prometheus::Registry& registry() { return *registry_; }

 private:
  ServiceMetrics() = default;

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<MetricsHttpServer> http_;
  prometheus::Histogram* queue_time_ = nullptr;
  prometheus::Histogram* ttft_ = nullptr;
  prometheus::Histogram* itl_ = nullptr;
  prometheus::Histogram* e2e_ = nullptr;
  prometheus::Histogram* prefill_time_ = nullptr;
  prometheus::Histogram* kv_transfer_seconds_ = nullptr;
  prometheus::Counter* prompt_tokens_ = nullptr;
  prometheus::Counter* generation_tokens_ = nullptr;
  prometheus::Counter* kv_transfer_bytes_ = nullptr;
  prometheus::Counter* kv_transfer_failures_ = nullptr;
  prometheus::Family<prometheus::Counter>* finished_ = nullptr;
  prometheus::Family<prometheus::Counter>* failed_ = nullptr;
  prometheus::Gauge* running_ = nullptr;
  prometheus::Gauge* waiting_ = nullptr;
  prometheus::Gauge* kv_usage_ = nullptr;
  prometheus::Gauge* free_blocks_ = nullptr;
  prometheus::Gauge* pending_imports_ = nullptr;
  prometheus::Gauge* exported_ = nullptr;
  prometheus::Gauge* preemptions_ = nullptr;
  prometheus::Family<prometheus::Gauge>* workers_ = nullptr;
};

}  // namespace cleave

#endif  // CLEAVE_SERVICES_COMMON_METRICS_H_
