#include "services/prefill/kv_sender.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "engine/transfer/kv_block_layout.h"
#include "engine/util/status.h"

namespace cleave {

absl::StatusOr<std::unique_ptr<KvSender>> KvSender::Create(const KvStorage& storage,
                                                           const UcxAgentOptions& options,
                                                           int num_threads,
                                                           absl::Duration timeout) {
  std::unique_ptr<KvSender> s(new KvSender(storage, timeout));
  ASSIGN_OR_RETURN(s->agent_, UcxAgent::Create(options));
  for (int i = 0; i < num_threads; ++i) s->threads_.emplace_back([p = s.get()] { p->Run(); });
  return s;
}

KvSender::~KvSender() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void KvSender::Send(std::vector<int> blocks, v1::KvTarget target, Done done) {
  absl::MutexLock lock(&mu_);
  jobs_.push_back({std::move(blocks), std::move(target), std::move(done)});
}

absl::StatusOr<KvSendResult> KvSender::SendNow(const std::vector<int>& blocks,
                                               const v1::KvTarget& target) {
  const KvStorageShape& local = storage_.shape();
  if (target.block_ids_size() != static_cast<int>(blocks.size())) {
    return absl::InvalidArgumentError(absl::StrCat("target.block_ids: ", target.block_ids_size(),
                                                   " blocks for a prompt of ", blocks.size()));
  }
  if (target.block_size() != local.block_size || target.num_kv_heads() != local.num_kv_heads ||
      target.head_dim() != local.head_dim || target.num_layers() != local.num_layers) {
    return absl::InvalidArgumentError(
        "target: the decode worker's KV layout differs from this worker's (model or block_size)");
  }
  KvStorageShape remote_shape = local;
  remote_shape.num_blocks = target.num_blocks();
  ASSIGN_OR_RETURN(KvPoolView remote, RemoteKvPoolView(remote_shape, target.memory_descriptor()));
  const std::vector<int> dst(target.block_ids().begin(), target.block_ids().end());
  ASSIGN_OR_RETURN(std::vector<TransferSegment> segments,
                   KvBlockSegments(LocalKvPoolView(storage_), remote, blocks, dst));
  KvSendResult result;
  for (const TransferSegment& s : segments) result.bytes += static_cast<int64_t>(s.length);
  const auto start = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(
      agent_->Write(target.ucx_address(), target.memory_descriptor(), segments, timeout_));
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

void KvSender::Run() {
  for (;;) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](KvSender* s) ABSL_NO_THREAD_SAFETY_ANALYSIS { return s->stop_ || !s->jobs_.empty(); },
          this));
      if (jobs_.empty()) return;  // stopping, nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job.done(SendNow(job.blocks, job.target));
  }
}

}  // namespace cleave
