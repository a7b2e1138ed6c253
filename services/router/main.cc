// cleave-router: the public Generation API in front of prefill and decode pools.
#include <cstdio>
#include <filesystem>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "engine/model/checkpoint.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/util/log.h"
#include "services/common/server.h"
#include "services/common/service_flags.h"
#include "services/router/generation_service.h"
#include "services/router/registry_service.h"

ABSL_FLAG(std::string, model_name, "", "the name clients see (default: the directory's name)");
ABSL_FLAG(std::string, policy, "least_load", "routing policy: round_robin or least_load");
ABSL_FLAG(int, heartbeat_interval_ms, 500, "how often workers report their load");
ABSL_FLAG(int, heartbeat_timeout_ms, 2000, "a worker silent this long is dropped");

namespace {

int Fail(const std::string& message, int code) {
  std::fprintf(stderr, "cleave-router: %s\n", message.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("cleave-router --port N --model DIR [flags]");
  absl::ParseCommandLine(argc, argv);
  cleave::InstallShutdownSignals();
  cleave::SetLogLevel(absl::GetFlag(FLAGS_log_level).c_str());
  if (std::string err = cleave::CheckServiceFlags(); !err.empty()) return Fail(err, 2);
  const int port = absl::GetFlag(FLAGS_port);
  const std::string model_dir = absl::GetFlag(FLAGS_model);
  if (absl::GetFlag(FLAGS_heartbeat_interval_ms) <= 0 ||
      absl::GetFlag(FLAGS_heartbeat_timeout_ms) <= absl::GetFlag(FLAGS_heartbeat_interval_ms)) {
    return Fail("--heartbeat_timeout_ms: must exceed --heartbeat_interval_ms (> 0)", 2);
  }
  auto policy = cleave::MakeRoutingPolicy(absl::GetFlag(FLAGS_policy));
  if (!policy.ok()) return Fail(absl::StrCat("--", policy.status().message()), 2);
  auto checkpoint = cleave::Checkpoint::Open(model_dir);
  if (!checkpoint.ok()) return Fail(checkpoint.status().ToString(), 1);
  auto tokenizer = cleave::LoadTokenizer(model_dir);
  if (!tokenizer.ok()) return Fail(tokenizer.status().ToString(), 1);
  std::string name = absl::GetFlag(FLAGS_model_name);
  if (name.empty()) name = std::filesystem::path(model_dir).lexically_normal().filename().string();
  if (name.empty()) name = model_dir;

  auto metrics = cleave::ServiceMetrics::Create(absl::GetFlag(FLAGS_host),
                                                absl::GetFlag(FLAGS_metrics_port), "router");
  if (!metrics.ok()) return Fail(metrics.status().ToString(), 1);
  cleave::WorkerRegistry registry(absl::Milliseconds(absl::GetFlag(FLAGS_heartbeat_interval_ms)),
                                  absl::Milliseconds(absl::GetFlag(FLAGS_heartbeat_timeout_ms)));
  cleave::RegistryService registry_service(&registry);
  cleave::GenerationService generation(name, (*checkpoint)->config(), std::move(*tokenizer),
                                       &registry, policy->get(), metrics->get());
  int bound = 0;
  auto server = cleave::StartGrpcServer(absl::GetFlag(FLAGS_host), port,
                                        {&generation, &registry_service}, &bound);
  if (!server.ok()) return Fail(server.status().ToString(), 1);
  cleave::SetServing(server->get(), true);
  LOG_INFO("router serving model '{}' on {}:{} (policy {})", name, absl::GetFlag(FLAGS_host), bound,
           absl::GetFlag(FLAGS_policy));

  // Keep the worker gauges fresh for dashboards.
  std::atomic<bool> stop{false};
  std::thread gauges([&] {
    while (!stop.load()) {
      (*metrics)->SetWorkers(registry.Count(cleave::v1::WORKER_ROLE_PREFILL),
                             registry.Count(cleave::v1::WORKER_ROLE_DECODE));
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  });
  const int sig = cleave::WaitForShutdownSignal();
  LOG_INFO("router: signal {}, shutting down", sig);
  stop = true;
  gauges.join();
  cleave::SetServing(server->get(), false);
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}
