// Continuous batching: which requests compute how many tokens in the next model step.
//
// One engine thread owns the scheduler (no locking inside). Each step has a budget of
// max_num_batched_tokens tokens:
//  1. Running requests, in admission order, each ask for the tokens they have not computed (1 for
//     a decode, a chunk of an unfinished prefill), capped by the remaining budget and
//     max_prefill_chunk. If their KV blocks cannot be reserved, the most recently admitted running
//     request is preempted (blocks freed, progress reset, outputs kept so the recompute prefills
//     prompt + outputs) to the front of the waiting queue, and the reservation is retried; when
//     the request itself is the latest, it is preempted and the step stops scheduling.
//  2. If nothing was preempted, waiting requests are admitted first come, first served while the
//     budget, max_num_seqs and free KV blocks allow; admission shares the longest cached prefix.
//     The head of the queue is never skipped.
// Progress: a request whose tokens can never fit the whole cache is finished with kAbort (see
// TakeRejected) instead of waiting forever, and with chunked prefill off a prompt longer than a
// whole step's budget is chunked anyway. So every step schedules something while work remains.
#ifndef CLEAVE_ENGINE_SCHED_SCHEDULER_H_
#define CLEAVE_ENGINE_SCHED_SCHEDULER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "engine/kv/kv_cache_manager.h"
#include "engine/sched/request.h"

namespace cleave {

struct SchedulerConfig {
  int max_num_seqs = 64;             // running requests at once
  int max_num_batched_tokens = 512;  // tokens per step, all requests together
  int max_prefill_chunk = 0;         // tokens of one prefill per step; 0: the budget
  bool enable_chunked_prefill = true;

  // INVALID_ARGUMENT naming the field.
  absl::Status Validate() const;
};

// Computes tokens [req->num_computed_tokens, + num_new_tokens) of req's sequence.
struct ScheduledItem {
  Request* req = nullptr;
  int num_new_tokens = 0;
};

struct SchedulerOutput {
  std::vector<ScheduledItem> items;
  std::vector<Request*> preempted;  // this step; they are waiting again, their KV is gone
  int num_batched_tokens = 0;
  bool empty() const { return items.empty(); }
};

class Scheduler {
 public:
  // config must pass Validate(). kv must outlive the scheduler.
  Scheduler(SchedulerConfig config, KvCacheManager* kv);
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Takes ownership, assigns a fresh seq_id (never 0) and queues the request as kWaiting.
  SeqId Add(std::unique_ptr<Request> req);
  // Plans the next step. Call Update with the result before the next Schedule or any Finish of
  // a scheduled request.
  SchedulerOutput Schedule();
  // After the model ran `out`: advances every item's num_computed_tokens, appends sampled[i] to
  // its output_ids, and publishes the KV blocks that became full. sampled.size() ==
  // out.items.size(), and sampled[i] is set exactly for items that reached their sequence's end.
  void Update(const SchedulerOutput& out, const std::vector<std::optional<int>>& sampled);
  // Frees the request's blocks and marks it finished; it stays findable until TakeFinished.
  // Unknown or already finished requests are left alone.
  void Finish(SeqId seq_id, FinishReason reason);
  // Finish, but the request's KV blocks stay referenced under its seq_id: the caller frees them
  // with KvCacheManager::Free (a prefill worker, once the blocks have been sent).
  void FinishKeepingKv(SeqId seq_id, FinishReason reason);
  // A fresh seq_id for a request whose KV arrives from elsewhere: the caller reserves its blocks
  // under this id, then hands it over with AddRunning.
  SeqId NewSeqId() { return next_seq_id_++; }
  // Takes a request whose first num_computed_tokens tokens already have KV in seq_id's blocks
  // (req->seq_id from NewSeqId) straight into the running set, as the most recently admitted.
  void AddRunning(std::unique_ptr<Request> req);
  // Prompt tokens not yet computed, over waiting and running requests (a load report).
  int64_t NumPendingPrefillTokens() const;
  // Hands a finished request back; null if seq_id is not a finished request.
  std::unique_ptr<Request> TakeFinished(SeqId seq_id);
  // Requests Schedule finished with kAbort because they can never fit the KV cache, since the
  // last call. They are finished (Find works, TakeFinished hands them back).
  std::vector<SeqId> TakeRejected();

  // Any request: waiting, running or finished but not yet taken. Null if unknown.
  Request* Find(SeqId seq_id);
  bool HasWork() const { return !waiting_.empty() || !running_.empty(); }
  int num_running() const { return static_cast<int>(running_.size()); }
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int64_t num_preemptions() const { return num_preemptions_; }
  const SchedulerConfig& config() const { return config_; }

 private:
  // Tokens `req` may compute this step from num_computed_tokens, given the remaining budget.
  int ChunkSize(const Request& req, int budget) const;
  void ScheduleRunning(SchedulerOutput* out, int* budget);
  void AdmitWaiting(SchedulerOutput* out, int* budget);
  void Preempt(Request* req);
  void Reject(Request* req);
  void FinishImpl(SeqId seq_id, FinishReason reason, bool free_kv);

  const SchedulerConfig config_;
  KvCacheManager* const kv_;
  absl::flat_hash_map<SeqId, std::unique_ptr<Request>> requests_;  // every request not yet taken
  std::deque<Request*> waiting_;
  std::vector<Request*> running_;  // admission order: the back is the most recently admitted
  std::vector<SeqId> rejected_;
  SeqId next_seq_id_ = 1;
  int64_t num_preemptions_ = 0;
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_SCHED_SCHEDULER_H_
