#include "services/common/metrics.h"


#include "absl/strings/str_cat.h"

namespace cleave {
namespace {

using prometheus::Histogram;

// Latency buckets (seconds) from 1 ms to 80 s: CPU test models answer in milliseconds,
// large models on GPUs in seconds.
Histogram::BucketBoundaries LatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
          0.75,  1.0,    2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0};
}

Histogram* AddHistogram(prometheus::Registry& r, const std::string& name, const std::string& help) {
  return &prometheus::BuildHistogram().Name(name).Help(help).Register(r).Add({}, LatencyBuckets());
}

prometheus::Counter* AddCounter(prometheus::Registry& r, const std::string& name,
                                const std::string& help) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(r).Add({});
}

prometheus::Gauge* AddGauge(prometheus::Registry& r, const std::string& name,
                            const std::string& help) {
  return &prometheus::BuildGauge().Name(name).Help(help).Register(r).Add({});
}

}  // namespace

absl::StatusOr<std::unique_ptr<ServiceMetrics>> ServiceMetrics::Create(const std::string& host,
                                                                       int port,
                                                                       const std::string& service) {
  std::unique_ptr<ServiceMetrics> m(new ServiceMetrics());
  m->registry_ = std::make_shared<prometheus::Registry>();
  prometheus::Registry& r = *m->registry_;
  m->queue_time_ = AddHistogram(r, "cleave_request_queue_time_seconds",
                                "Time from arrival until prefill started.");
  m->ttft_ = AddHistogram(r, "cleave_time_to_first_token_seconds", "Time to the first token.");
  m->itl_ = AddHistogram(r, "cleave_time_per_output_token_seconds",
                         "Inter-token latency: time between successive output tokens.");
  m->e2e_ = AddHistogram(r, "cleave_e2e_request_latency_seconds", "End-to-end request latency.");
  m->prefill_time_ = AddHistogram(r, "cleave_request_prefill_time_seconds",
                                  "Time a prefill spent computing the prompt.");
  m->kv_transfer_seconds_ = AddHistogram(r, "cleave_kv_transfer_seconds",
                                         "Time to move one request's KV blocks to decode.");
  m->prompt_tokens_ = AddCounter(r, "cleave_prompt_tokens_total", "Prefilled prompt tokens.");
  m->generation_tokens_ = AddCounter(r, "cleave_generation_tokens_total", "Generated tokens.");
  m->kv_transfer_bytes_ = AddCounter(r, "cleave_kv_transfer_bytes_total", "KV bytes sent.");
  m->kv_transfer_failures_ =
      AddCounter(r, "cleave_kv_transfer_failures_total", "KV transfers that failed.");
  m->finished_ = &prometheus::BuildCounter()
                      .Name("cleave_request_success_total")
                      .Help("Finished requests by finish reason.")
                      .Register(r);
  m->failed_ = &prometheus::BuildCounter()
                    .Name("cleave_request_failure_total")
                    .Help("Requests that ended with an error, by gRPC status code.")
                    .Register(r);
  m->running_ = AddGauge(r, "cleave_num_requests_running", "Requests in the running batch.");
  m->waiting_ = AddGauge(r, "cleave_num_requests_waiting", "Requests waiting to be scheduled.");
  m->kv_usage_ = AddGauge(r, "cleave_kv_cache_usage_perc", "Fraction of KV blocks in use (0-1).");
  m->free_blocks_ = AddGauge(r, "cleave_kv_cache_free_blocks", "Free (or evictable) KV blocks.");
  m->pending_imports_ = AddGauge(r, "cleave_kv_handoffs_pending",
                                 "Decode: requests holding blocks while their KV arrives.");
  m->exported_ = AddGauge(r, "cleave_kv_exports_in_flight",
                          "Prefill: finished prompts whose blocks are being sent.");
  m->preemptions_ = AddGauge(r, "cleave_num_preemptions", "Preemptions since start.");
  m->workers_ = &prometheus::BuildGauge()
                     .Name("cleave_router_workers")
                     .Help("Healthy workers known to the router, by role.")
                     .Register(r);
  if (port > 0) {
    auto http = MetricsHttpServer::Start(host, port, m->registry_);
    if (!http.ok()) return absl::Status(http.status().code(), absl::StrCat(service, ": ", http.status().message()));
    m->http_ = std::move(*http);
  }
  return m;
}

void ServiceMetrics::CountFinished(FinishReason reason) {
  finished_->Add({{"finished_reason", std::string(FinishReasonName(reason))}}).Increment();
}

void ServiceMetrics::CountFailed(const std::string& code) {
  failed_->Add({{"code", code}}).Increment();
}

void ServiceMetrics::ObserveKvTransfer(double seconds, double bytes) {
  kv_transfer_seconds_->Observe(seconds);
  kv_transfer_bytes_->Increment(bytes);
}

void ServiceMetrics::SetEngineLoad(const Engine::Load& load) {
  running_->Set(load.running);
  waiting_->Set(load.waiting);
  free_blocks_->Set(load.free_kv_blocks);
  kv_usage_->Set(load.total_kv_blocks > 0
                     ? 1.0 - double(load.free_kv_blocks) / load.total_kv_blocks
                     : 0.0);
  pending_imports_->Set(load.pending_imports);
  exported_->Set(load.exported);
  preemptions_->Set(static_cast<double>(load.num_preemptions));
}

void ServiceMetrics::SetWorkers(int prefill, int decode) {
  workers_->Add({{"role", "prefill"}}).Set(prefill);
  workers_->Add({{"role", "decode"}}).Set(decode);
}

}  // namespace cleave
