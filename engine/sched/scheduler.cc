#include "engine/sched/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/util/check.h"

namespace cleave {

absl::Status SchedulerConfig::Validate() const {
  if (max_num_seqs < 1) {
    return absl::InvalidArgumentError(absl::StrCat("max_num_seqs: ", max_num_seqs, " < 1"));
  }
  if (max_num_batched_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_num_batched_tokens: ", max_num_batched_tokens, " < 1"));
  }
  if (max_prefill_chunk < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_prefill_chunk: ", max_prefill_chunk, " < 0"));
  }
  return absl::OkStatus();
}

Scheduler::Scheduler(SchedulerConfig config, KvCacheManager* kv) : config_(config), kv_(kv) {
  CHECK(kv_ != nullptr);
  CHECK(config_.Validate().ok());
}

SeqId Scheduler::Add(std::unique_ptr<Request> req) {
  const SeqId id = next_seq_id_++;
  req->seq_id = id;
  req->status = RequestStatus::kWaiting;
  req->finish_reason = FinishReason::kNone;
  req->num_computed_tokens = 0;
  waiting_.push_back(req.get());
  requests_.emplace(id, std::move(req));
  return id;
}

int Scheduler::ChunkSize(const Request& req, int budget) const {
  int n = std::min(req.num_tokens() - req.num_computed_tokens, budget);
  if (config_.enable_chunked_prefill && config_.max_prefill_chunk > 0) {
    n = std::min(n, config_.max_prefill_chunk);
  }
  return n;
}

SchedulerOutput Scheduler::Schedule() {
  SchedulerOutput out;
  int budget = config_.max_num_batched_tokens;
  ScheduleRunning(&out, &budget);
  // A step that had to preempt is short of KV: admitting now would only preempt again.
  if (out.preempted.empty()) AdmitWaiting(&out, &budget);
  out.num_batched_tokens = config_.max_num_batched_tokens - budget;
  return out;
}

void Scheduler::ScheduleRunning(SchedulerOutput* out, int* budget) {
  for (size_t i = 0; i < running_.size() && *budget > 0; ++i) {
    Request* req = running_[i];
    const int n = ChunkSize(*req, *budget);
    // Update appends a token whenever a request reaches its end, so a running request always
    // has something left to compute.
    CHECK(n > 0);
    bool reserved = true;
    while (!kv_->Reserve(req->seq_id, req->num_computed_tokens + n)) {
      // Victims come from the back, which is never before req: requests already scheduled this
      // step keep their blocks.
      Request* victim = running_.back();
      running_.pop_back();
      Preempt(victim);
      out->preempted.push_back(victim);
      if (victim == req) {
        reserved = false;
        break;
      }
    }
    if (!reserved) break;
    out->items.push_back({req, n});
    *budget -= n;
  }
}

void Scheduler::AdmitWaiting(SchedulerOutput* out, int* budget) {
  std::vector<int> tokens;
  while (!waiting_.empty() && *budget > 0 &&
         static_cast<int>(running_.size()) < config_.max_num_seqs) {
    Request* req = waiting_.front();
    const int total = req->num_tokens();
    if (total == 0 || kv_->NumBlocksFor(total) > kv_->num_total_blocks()) {
      waiting_.pop_front();
      Reject(req);
      continue;
    }
    PrefixHit hit;
    if (kv_->prefix_caching_enabled()) {
      tokens = req->AllTokens();
      hit = kv_->FindCachedPrefix(tokens);
    }
    const int remaining = total - hit.num_tokens;
    int n = std::min(remaining, *budget);
    if (config_.enable_chunked_prefill && config_.max_prefill_chunk > 0) {
      n = std::min(n, config_.max_prefill_chunk);
    }
    // Without chunked prefill a prompt waits for a step with room for all of it, unless no step
    // ever has that much room: then chunking is the only way it can run.
    if (!config_.enable_chunked_prefill && n < remaining &&
        remaining <= config_.max_num_batched_tokens) {
      break;
    }
    if (kv_->NumBlocksToAdmit(hit, hit.num_tokens + n) > kv_->num_free_blocks()) break;

    waiting_.pop_front();
    const int cached =
        kv_->prefix_caching_enabled() ? kv_->AcquireCachedPrefix(req->seq_id, tokens) : 0;
    CHECK(cached == hit.num_tokens);
    CHECK(kv_->Reserve(req->seq_id, cached + n));
    req->num_computed_tokens = cached;
    if (req->num_preemptions == 0) {
      req->num_cached_prompt_tokens = std::min(cached, req->num_prompt_tokens());
    }
    req->status = RequestStatus::kRunning;
    running_.push_back(req);
    out->items.push_back({req, n});
    *budget -= n;
  }
}

void Scheduler::Preempt(Request* req) {
  kv_->Free(req->seq_id);
  req->num_computed_tokens = 0;
  ++req->num_preemptions;
  ++num_preemptions_;
  req->status = RequestStatus::kWaiting;
  waiting_.push_front(req);
}

void Scheduler::Reject(Request* req) {
  kv_->Free(req->seq_id);
  req->status = RequestStatus::kFinished;
  req->finish_reason = FinishReason::kAbort;
  rejected_.push_back(req->seq_id);
}

void Scheduler::Update(const SchedulerOutput& out, const std::vector<std::optional<int>>& sampled) {
  CHECK(sampled.size() == out.items.size());
  const int bs = kv_->block_size();
  for (size_t i = 0; i < out.items.size(); ++i) {
    Request* req = out.items[i].req;
    CHECK(req->status == RequestStatus::kRunning);
    const int before = req->num_computed_tokens;
    req->num_computed_tokens += out.items[i].num_new_tokens;
    CHECK(req->num_computed_tokens <= req->num_tokens());
    CHECK(sampled[i].has_value() == (req->num_computed_tokens == req->num_tokens()));
    if (sampled[i]) req->output_ids.push_back(*sampled[i]);
    if (kv_->prefix_caching_enabled() && req->num_computed_tokens / bs > before / bs) {
      kv_->Commit(req->seq_id, req->AllTokens(), req->num_computed_tokens);
    }
  }
}

void Scheduler::AddRunning(std::unique_ptr<Request> req) {
  CHECK(req->seq_id != 0 && req->seq_id < next_seq_id_ && !requests_.contains(req->seq_id));
  CHECK(req->num_computed_tokens < req->num_tokens());
  req->status = RequestStatus::kRunning;
  req->finish_reason = FinishReason::kNone;
  running_.push_back(req.get());
  requests_.emplace(req->seq_id, std::move(req));
}

int64_t Scheduler::NumPendingPrefillTokens() const {
  int64_t n = 0;
  for (const Request* r : waiting_) n += r->num_tokens() - r->num_computed_tokens;
  for (const Request* r : running_) {
    n += std::max(0, r->num_prompt_tokens() - r->num_computed_tokens);
  }
  return n;
}

void Scheduler::FinishKeepingKv(SeqId seq_id, FinishReason reason) {
  FinishImpl(seq_id, reason, /*free_kv=*/false);
}

void Scheduler::Finish(SeqId seq_id, FinishReason reason) {
  FinishImpl(seq_id, reason, /*free_kv=*/true);
}

void Scheduler::FinishImpl(SeqId seq_id, FinishReason reason, bool free_kv) {
  auto it = requests_.find(seq_id);
  if (it == requests_.end()) return;
  Request* req = it->second.get();
  if (req->status == RequestStatus::kFinished) return;
  if (req->status == RequestStatus::kRunning) {
    running_.erase(std::find(running_.begin(), running_.end(), req));
  } else {
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), req));
  }
  if (free_kv) kv_->Free(seq_id);
  req->status = RequestStatus::kFinished;
  req->finish_reason = reason;
}

std::unique_ptr<Request> Scheduler::TakeFinished(SeqId seq_id) {
  auto it = requests_.find(seq_id);
  if (it == requests_.end() || it->second->status != RequestStatus::kFinished) return nullptr;
  std::unique_ptr<Request> req = std::move(it->second);
  requests_.erase(it);
  return req;
}

std::vector<SeqId> Scheduler::TakeRejected() { return std::exchange(rejected_, {}); }

Request* Scheduler::Find(SeqId seq_id) {
  auto it = requests_.find(seq_id);
  return it == requests_.end() ? nullptr : it->second.get();
}

}  // namespace cleave
