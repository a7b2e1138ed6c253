#include "engine/core/engine.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace cleave {

Engine::Engine(std::unique_ptr<EngineCore> core)
    : core_(std::move(core)), model_config_(core_->model_config()) {
  thread_ = std::thread([this] { Loop(); });
}

Engine::~Engine() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void Engine::Submit(GenerateRequest request, Callback callback) {
  absl::MutexLock lock(&mu_);
  queue_.push_back({.abort = false,
                    .request_id = request.request_id,
                    .request = std::move(request),
                    .callback = std::move(callback)});
}

void Engine::Abort(const std::string& request_id) {
  absl::MutexLock lock(&mu_);
  queue_.push_back({.abort = true, .request_id = request_id});
}

Engine::Load Engine::load() const {
  absl::MutexLock lock(&mu_);
  return load_;
}

void Engine::Apply(Command& command) {
  if (command.abort) {
    if (auto it = ids_.find(command.request_id); it != ids_.end()) core_->Abort(it->second);
    return;
  }
  if (ids_.contains(command.request_id)) {
    command.callback(absl::AlreadyExistsError(absl::StrCat(
                         "request_id: '", command.request_id, "' is already running")),
                     RequestOutput{});
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

void Engine::Loop() {
  for (;;) {
    std::deque<Command> commands;
    bool stop;
    {
      absl::MutexLock lock(&mu_);
      // Idle: sleep until a command arrives (bounded, so stop is noticed promptly).
      if (!core_->HasWork()) {
        mu_.AwaitWithTimeout(absl::Condition(
                                 +[](Engine* e) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                                   return !e->queue_.empty() || e->stop_;
                                 },
                                 this),
                             absl::Milliseconds(100));
      }
      commands.swap(queue_);
      stop = stop_;
    }
    for (Command& c : commands) Apply(c);
    if (stop) break;
    if (core_->HasWork()) {
      std::vector<RequestOutput> outputs = core_->Step();
      Deliver(outputs);
    }
    absl::MutexLock lock(&mu_);
    load_.running = core_->scheduler().num_running();
    load_.waiting = core_->scheduler().num_waiting();
    load_.free_kv_blocks = core_->kv_manager().num_free_blocks();
    load_.total_kv_blocks = core_->kv_manager().num_total_blocks();
  }
  // Shutdown: everything still in flight ends with abort, so no stream hangs.
  for (auto& [id, cb] : callbacks_) core_->Abort(id);
  for (int i = 0; i < 4 && core_->HasWork(); ++i) {
    std::vector<RequestOutput> outputs = core_->Step();
    Deliver(outputs);
  }
}

}  // namespace cleave
