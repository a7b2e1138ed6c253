// cleave-prefill: a prefill worker. Prompts are computed here; their KV goes to the decode
// worker the router chose, over UCX.
#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "services/common/worker_flags.h"
#include "services/common/worker_main.h"
#include "services/prefill/prefill_service.h"

ABSL_FLAG(int, kv_sender_threads, 2, "threads writing KV to decode workers");

int main(int argc, char** argv) {
  std::unique_ptr<cleave::KvSender> sender;
  std::unique_ptr<cleave::PrefillService> prefill;
  return cleave::RunWorker(
      argc, argv, "cleave-prefill", cleave::v1::WORKER_ROLE_PREFILL,
      [&](const cleave::WorkerContext& wc) -> absl::StatusOr<cleave::WorkerServices> {
        if (absl::GetFlag(FLAGS_kv_sender_threads) < 1) {
          return absl::InvalidArgumentError("--kv_sender_threads: must be at least 1");
        }
        cleave::UcxAgentOptions ucx;
        ucx.transports = absl::GetFlag(FLAGS_ucx_tls);
        ucx.name = wc.instance;
        auto s = cleave::KvSender::Create(
            wc.engine->kv_storage(), ucx, absl::GetFlag(FLAGS_kv_sender_threads),
            absl::Milliseconds(absl::GetFlag(FLAGS_kv_transfer_timeout_ms)));
        if (!s.ok()) return s.status();
        sender = std::move(*s);
        prefill = std::make_unique<cleave::PrefillService>(wc.instance, wc.engine, sender.get(),
                                                           wc.metrics);
        return cleave::WorkerServices{{prefill.get()}, [&] { sender.reset(); }};
      });
}
