// cleave-decode: a decode worker (or, with --colocated, a worker that prefills too).
#include "absl/flags/flag.h"
#include "absl/time/time.h"
#include "services/common/worker_flags.h"
#include "services/common/worker_main.h"
#include "services/decode/decode_service.h"

ABSL_FLAG(bool, colocated, false, "prefill prompts here too (no handoff); registers as colocated");
ABSL_FLAG(int, handoff_timeout_ms, 30000,
          "a reservation whose KV does not arrive in this time is cancelled and its blocks freed");

int main(int argc, char** argv) {
  // Flags are parsed inside RunWorker, before make_services reads them.
  std::unique_ptr<cleave::KvReceiver> receiver;
  std::unique_ptr<cleave::DecodeService> decode;
  bool colocated = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--colocated" || a == "--colocated=true" || a == "--colocated=1") colocated = true;
  }
  const auto role = colocated ? cleave::v1::WORKER_ROLE_COLOCATED : cleave::v1::WORKER_ROLE_DECODE;
  return cleave::RunWorker(
      argc, argv, "cleave-decode", role,
      [&](const cleave::WorkerContext& wc) -> absl::StatusOr<cleave::WorkerServices> {
        cleave::UcxAgentOptions ucx;
        ucx.transports = absl::GetFlag(FLAGS_ucx_tls);
        ucx.name = wc.instance;
        auto r = cleave::KvReceiver::Create(wc.engine->kv_storage(), ucx, wc.instance);
        if (!r.ok()) return r.status();
        receiver = std::move(*r);
        decode = std::make_unique<cleave::DecodeService>(
            wc.engine, receiver.get(), wc.metrics,
            absl::Milliseconds(absl::GetFlag(FLAGS_handoff_timeout_ms)));
        return cleave::WorkerServices{{decode.get()}, [&] { receiver.reset(); }};
      });
}
