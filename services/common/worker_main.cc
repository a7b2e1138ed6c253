#include "services/common/worker_main.h"

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "engine/util/log.h"
#include "services/common/server.h"
#include "services/common/worker.h"
#include "services/common/worker_flags.h"

namespace cleave {

int RunWorker(int argc, char** argv, const char* binary, v1::WorkerRole role,
              const std::function<absl::StatusOr<WorkerServices>(const WorkerContext&)>&
                  make_services) {
  absl::SetProgramUsageMessage(
      absl::StrCat(binary, " --port N --model DIR --router HOST:PORT [flags]"));
  absl::ParseCommandLine(argc, argv);
  InstallShutdownSignals();
  SetLogLevel(absl::GetFlag(FLAGS_log_level).c_str());
  auto fail = [binary](const std::string& message, int code) {
    std::fprintf(stderr, "%s: %s\n", binary, message.c_str());
    return code;
  };
  if (std::string err = CheckWorkerFlags(); !err.empty()) return fail(err, 2);
  const std::string host = absl::GetFlag(FLAGS_host);
  const std::string role_name =
      role == v1::WORKER_ROLE_PREFILL ? "prefill"
      : role == v1::WORKER_ROLE_DECODE ? "decode"
                                       : "colocated";
  WorkerContext wc;
  wc.role = role;
  wc.instance = absl::GetFlag(FLAGS_instance).empty()
                    ? absl::StrCat(role_name, "-", absl::GetFlag(FLAGS_port))
                    : absl::GetFlag(FLAGS_instance);

  std::unique_ptr<Backend> backend;
  auto engine = LoadEngine(absl::GetFlag(FLAGS_model), EngineConfigFromFlags(),
                           absl::Milliseconds(absl::GetFlag(FLAGS_handoff_quarantine_ms)), &backend);
  if (!engine.ok()) return fail(engine.status().ToString(), 1);
  auto metrics = ServiceMetrics::Create(host, absl::GetFlag(FLAGS_metrics_port), wc.instance);
  if (!metrics.ok()) return fail(metrics.status().ToString(), 1);
  wc.engine = engine->get();
  wc.metrics = metrics->get();
  auto parts = make_services(wc);
  if (!parts.ok()) return fail(parts.status().ToString(), 1);
  WorkerStatsService stats(wc.instance, role, wc.engine);
  parts->services.push_back(&stats);

  int port = 0;
  auto server = StartGrpcServer(host, absl::GetFlag(FLAGS_port), parts->services, &port);
  if (!server.ok()) return fail(server.status().ToString(), 1);
  v1::RegisterRequest reg;
  reg.set_role(role);
  reg.set_address(absl::StrCat(host, ":", port));
  reg.set_model(absl::GetFlag(FLAGS_model));
  reg.set_instance(wc.instance);
  RouterLink link(absl::GetFlag(FLAGS_router), reg, wc.engine, wc.metrics);
  link.Start();
  SetServing(server->get(), true);
  LOG_INFO("{} serving on {}:{}", wc.instance, host, port);

  const int sig = WaitForShutdownSignal();
  LOG_INFO("{}: signal {}, shutting down", wc.instance, sig);
  SetServing(server->get(), false);
  link.Stop();
  // Calls still open after the grace period are cancelled; the engine then aborts them.
  (*server)->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  // The transfer side first: its threads read the engine's KV pool.
  if (parts->teardown) parts->teardown();
  engine->reset();
  return 0;
}

}  // namespace cleave
