// The prefill side of the KV handoff: writes a finished prompt's KV blocks into the blocks a
// decode worker reserved (v1::KvTarget), over UCX, on a small pool of sender threads so the
// engine thread never waits on the network.
#ifndef CLEAVE_SERVICES_PREFILL_KV_SENDER_H_
#define CLEAVE_SERVICES_PREFILL_KV_SENDER_H_

#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cleave/v1/handoff.pb.h"
#include "engine/runtime/kv_storage.h"
#include "engine/transfer/ucx_agent.h"

namespace cleave {

struct KvSendResult {
  int64_t bytes = 0;
  double seconds = 0;
};

class KvSender {
 public:
  static absl::StatusOr<std::unique_ptr<KvSender>> Create(const KvStorage& storage,
                                                          const UcxAgentOptions& options,
                                                          int num_threads, absl::Duration timeout);
  ~KvSender();

  using Done = std::function<void(const absl::StatusOr<KvSendResult>& result)>;
  // Sends blocks[i] to target.block_ids(i) for every i. `done` runs on a sender thread; the
  // blocks must stay allocated until then.
  void Send(std::vector<int> blocks, v1::KvTarget target, Done done);

 private:
  KvSender(const KvStorage& storage, absl::Duration timeout) : storage_(storage), timeout_(timeout) {}
  absl::StatusOr<KvSendResult> SendNow(const std::vector<int>& blocks, const v1::KvTarget& target);
  void Run();

  const KvStorage& storage_;
  const absl::Duration timeout_;
  std::unique_ptr<UcxAgent> agent_;
  struct Job {
    std::vector<int> blocks;
    v1::KvTarget target;
    Done done;
  };
  absl::Mutex mu_;
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace cleave

#endif  // CLEAVE_SERVICES_PREFILL_KV_SENDER_H_
