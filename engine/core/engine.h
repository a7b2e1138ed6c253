// Engine: EngineCore on its own thread. Callers on any thread submit and abort;
// the engine thread alone touches the scheduler, KV cache and model, and reports
// through callbacks. The serving layers (gRPC reactors) sit on this.
#ifndef CLEAVE_ENGINE_CORE_ENGINE_H_
#define CLEAVE_ENGINE_CORE_ENGINE_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "engine/core/engine_core.h"

namespace cleave {

class Engine {
 public:
  // Runs on the engine thread for every chunk of a request, last one with
  // output.finished set, or once with a non-OK status if the request was rejected.
  // It must not block: it is the engine's step loop.
  using Callback = std::function<void(const absl::Status& status, const RequestOutput& output)>;

  explicit Engine(std::unique_ptr<EngineCore> core);
  // Stops the thread; requests still running end with finish reason abort.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request. Never blocks on the engine. `request.request_id` must be
  // unique among running requests (a duplicate is rejected with ALREADY_EXISTS).
  void Submit(GenerateRequest request, Callback callback);
  // Aborts a request by its id; unknown ids are ignored.
  void Abort(const std::string& request_id);

  // Load, as last observed by the engine thread.
  struct Load {
    int running = 0, waiting = 0, free_kv_blocks = 0, total_kv_blocks = 0;
  };
  Load load() const;
  const ModelConfig& model_config() const { return model_config_; }

 private:
  struct Command {
    bool abort = false;
    std::string request_id;
    GenerateRequest request;
    Callback callback;
  };
  void Loop();
  void Apply(Command& command);
  void Deliver(std::vector<RequestOutput>& outputs);

  std::unique_ptr<EngineCore> core_;  // engine thread only
  const ModelConfig model_config_;
  absl::flat_hash_map<SeqId, Callback> callbacks_;          // engine thread only
  absl::flat_hash_map<std::string, SeqId> ids_;             // engine thread only

  mutable absl::Mutex mu_;
  std::deque<Command> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  Load load_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_CORE_ENGINE_H_
