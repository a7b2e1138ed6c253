#include "engine/core/engine.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace cleave {

Engine::Engine(std::unique_ptr<EngineCore> core, absl::Duration handoff_quarantine)
    : core_(std::move(core)),
      model_config_(core_->model_config()),
      kv_storage_(core_->kv_storage()),
      max_model_len_(core_->max_model_len()),
      handoff_quarantine_(handoff_quarantine) {
  PublishLoad();
  thread_ = std::thread([this] { Loop(); });
}

Engine::~Engine() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void Engine::Push(Command command) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(command));
}

void Engine::Submit(GenerateRequest request, Callback callback) {
  Command c;
  c.request_id = request.request_id;
  c.request = std::move(request);
  c.callback = std::move(callback);
  Push(std::move(c));
}

void Engine::Abort(const std::string& request_id) {
  Command c;
  c.kind = Kind::kAbort;
  c.request_id = request_id;
  Push(std::move(c));
}

void Engine::ReleaseExportedKv(SeqId seq_id) {
  Command c;
  c.kind = Kind::kRelease;
  c.seq_id = seq_id;
  Push(std::move(c));
}

void Engine::SubmitImport(GenerateRequest request, ReservedCallback on_reserved, Callback on_output,
                          absl::Duration import_timeout) {
  Command c;
  c.kind = Kind::kImport;
  c.request_id = request.request_id;
  c.request = std::move(request);
  c.callback = std::move(on_output);
  c.on_reserved = std::move(on_reserved);
  c.deadline = absl::Now() + import_timeout;
  Push(std::move(c));
}

void Engine::CompleteImport(const std::string& request_id, TokenLogprob first,
                            int cached_prompt_tokens, DoneCallback done) {
  Command c;
  c.kind = Kind::kComplete;
  c.request_id = request_id;
  c.done = std::move(done);
  c.first = std::move(first);
  c.cached_prompt_tokens = cached_prompt_tokens;
  Push(std::move(c));
}

Engine::Load Engine::load() const {
  absl::MutexLock lock(&mu_);
  return load_;
}

void Engine::EndImport(PendingImport& pending, const absl::Status& status) {
  if (pending.seq_id != 0) {
    if (handoff_quarantine_ > absl::ZeroDuration()) {
      quarantine_.emplace_back(absl::Now() + handoff_quarantine_, pending.seq_id);
    } else {
      core_->CancelImport(pending.seq_id);
    }
  }
  if (!status.ok() && pending.on_reserved) {
    pending.on_reserved(status, {});
    return;
  }
  RequestOutput out;
  out.request_id = pending.request_id;
  out.finished = true;
  out.finish_reason = FinishReason::kAbort;
  pending.on_output(status, out);
}

void Engine::Apply(Command& command) {
  switch (command.kind) {
    case Kind::kAbort: {
      if (auto it = ids_.find(command.request_id); it != ids_.end()) core_->Abort(it->second);
      auto p = std::find_if(imports_.begin(), imports_.end(), [&](const PendingImport& i) {
        return i.request_id == command.request_id;
      });
      if (p != imports_.end()) {
        PendingImport pending = std::move(*p);
        imports_.erase(p);
        pending.on_reserved = nullptr;  // reserved or not, it ends through on_output
        EndImport(pending, absl::OkStatus());
      }
      return;
    }
    case Kind::kRelease:
      core_->ReleaseExportedKv(command.seq_id);
      return;
    case Kind::kComplete: {
      auto p = std::find_if(imports_.begin(), imports_.end(), [&](const PendingImport& i) {
        return i.request_id == command.request_id && i.seq_id != 0;
      });
      if (p == imports_.end()) {
        command.done(absl::NotFoundError(
            absl::StrCat("request_id: no reserved handoff '", command.request_id, "'")));
        return;
      }
      PendingImport pending = std::move(*p);
      imports_.erase(p);
      auto out = core_->CompleteImport(pending.seq_id, command.first, command.cached_prompt_tokens);
      if (!out.ok()) {
        command.done(out.status());
        pending.on_reserved = nullptr;
        EndImport(pending, out.status());
        return;
      }
      command.done(absl::OkStatus());
      if (!out->finished) {
        ids_[pending.request_id] = pending.seq_id;
        callbacks_[pending.seq_id] = pending.on_output;
      }
      pending.on_output(absl::OkStatus(), *out);
      return;
    }
    case Kind::kImport:
    case Kind::kSubmit:
      break;
  }
  const bool duplicate =
      ids_.contains(command.request_id) ||
      std::any_of(imports_.begin(), imports_.end(),
                  [&](const PendingImport& i) { return i.request_id == command.request_id; });
  if (duplicate) {
    absl::Status st = absl::AlreadyExistsError(
        absl::StrCat("request_id: '", command.request_id, "' is already running"));
    if (command.kind == Kind::kImport) {
      command.on_reserved(st, {});
    } else {
      command.callback(st, RequestOutput{});
    }
    return;
  }
  if (command.kind == Kind::kImport) {
    PendingImport pending;
    pending.request_id = command.request_id;
    pending.request = std::move(command.request);
    pending.on_reserved = std::move(command.on_reserved);
    pending.on_output = std::move(command.callback);
    pending.deadline = command.deadline;
    imports_.push_back(std::move(pending));
    return;
  }
  auto id = core_->AddRequest(std::move(command.request));
  if (!id.ok()) {
    command.callback(id.status(), RequestOutput{});
    return;
  }
  ids_[command.request_id] = *id;
  callbacks_[*id] = std::move(command.callback);
}

// Reservations go first come, first served: a large prompt at the head is never starved.
void Engine::ReserveImports() {
  for (auto it = imports_.begin(); it != imports_.end();) {
    if (it->seq_id != 0) {
      ++it;
      continue;
    }
    auto slot = core_->ReserveImport(it->request);
    if (absl::IsResourceExhausted(slot.status())) break;
    if (!slot.ok()) {
      PendingImport pending = std::move(*it);
      it = imports_.erase(it);
      EndImport(pending, slot.status());
      continue;
    }
    it->seq_id = slot->seq_id;
    it->request = GenerateRequest{};
    it->on_reserved(absl::OkStatus(), *slot);
    it->on_reserved = nullptr;
    ++it;
  }
}

void Engine::ExpireImports() {
  const absl::Time now = absl::Now();
  for (auto it = imports_.begin(); it != imports_.end();) {
    if (it->deadline > now) {
      ++it;
      continue;
    }
    PendingImport pending = std::move(*it);
    it = imports_.erase(it);
    EndImport(pending, absl::DeadlineExceededError(absl::StrCat(
                           "request ", pending.request_id, ": KV handoff did not complete in time")));
  }
}

void Engine::ReleaseQuarantine(bool all) {
  const absl::Time now = absl::Now();
  while (!quarantine_.empty() && (all || quarantine_.front().first <= now)) {
    core_->CancelImport(quarantine_.front().second);
    quarantine_.pop_front();
  }
}

void Engine::Deliver(std::vector<RequestOutput>& outputs) {
  for (RequestOutput& out : outputs) {
    auto it = callbacks_.find(out.seq_id);
    if (it == callbacks_.end()) continue;
    it->second(absl::OkStatus(), out);
    if (out.finished) {
      ids_.erase(out.request_id);
      callbacks_.erase(it);
    }
  }
}

void Engine::PublishLoad() {
  Load load;
  load.running = core_->scheduler().num_running();
  load.waiting = core_->scheduler().num_waiting();
  load.free_kv_blocks = core_->kv_manager().num_free_blocks();
  load.total_kv_blocks = core_->kv_manager().num_total_blocks();
  load.queued_prefill_tokens = core_->scheduler().NumPendingPrefillTokens();
  load.pending_imports = static_cast<int>(imports_.size());
  load.exported = core_->num_exported();
  load.quarantined = static_cast<int>(quarantine_.size());
  load.num_preemptions = core_->scheduler().num_preemptions();
  absl::MutexLock lock(&mu_);
  load_ = load;
}

void Engine::Loop() {
  for (;;) {
    std::deque<Command> commands;
    bool stop;
    {
      absl::MutexLock lock(&mu_);
      // Idle: sleep until a command arrives. Bounded, so stop and import deadlines are
      // noticed promptly.
      if (!core_->HasWork()) {
        // Idle with reservations or quarantined blocks: wake often enough for their deadlines.
        mu_.AwaitWithTimeout(absl::Condition(
                                 +[](Engine* e) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                   return !e->queue_.empty() || e->stop_;
                                 },
                                 this),
                             absl::Milliseconds(imports_.empty() && quarantine_.empty() ? 100 : 10));
      }
      commands.swap(queue_);
      stop = stop_;
    }
    for (Command& c : commands) Apply(c);
    if (stop) break;
    ExpireImports();
    ReleaseQuarantine(/*all=*/false);
    if (core_->HasWork()) {
      std::vector<RequestOutput> outputs = core_->Step();
      Deliver(outputs);
    }
    ReserveImports();
    PublishLoad();
  }
  // Shutdown: everything still in flight ends with abort, so no stream hangs.
  while (!imports_.empty()) {
    PendingImport pending = std::move(imports_.front());
    imports_.pop_front();
    pending.on_reserved = nullptr;
    EndImport(pending, absl::OkStatus());
  }
  ReleaseQuarantine(/*all=*/true);
  for (auto& [id, cb] : callbacks_) core_->Abort(id);
  for (int i = 0; i < 4 && core_->HasWork(); ++i) {
    std::vector<RequestOutput> outputs = core_->Step();
    Deliver(outputs);
  }
}

}  // namespace cleave
