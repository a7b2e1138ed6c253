// The decode side of the KV handoff: registers this worker's KV pool with UCX so prefill
// workers can write prompt KV straight into its blocks, and describes where a request's
// blocks are (the KvTarget the router passes to the prefill worker).
#ifndef CLEAVE_SERVICES_DECODE_KV_RECEIVER_H_
#define CLEAVE_SERVICES_DECODE_KV_RECEIVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cleave/v1/handoff.pb.h"
#include "engine/runtime/kv_storage.h"
#include "engine/transfer/ucx_agent.h"

namespace cleave {

class KvReceiver {
 public:
  static absl::StatusOr<std::unique_ptr<KvReceiver>> Create(const KvStorage& storage,
                                                            const UcxAgentOptions& options,
                                                            std::string instance);
  // Where the KV of `blocks` (in sequence order) must be written.
  v1::KvTarget Target(const std::vector<int>& blocks) const;

 private:
  KvReceiver() = default;
  std::unique_ptr<UcxAgent> agent_;
  v1::KvTarget template_;  // everything but the blocks
};

}  // namespace cleave

#endif  // CLEAVE_SERVICES_DECODE_KV_RECEIVER_H_
