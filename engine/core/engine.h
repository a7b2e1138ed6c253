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
#include "absl/time/time.h"
#include "engine/core/engine_core.h"

namespace cleave {

class Engine {
 public:
  // Runs on the engine thread for every chunk of a request, last one with
  // output.finished set, or once with a non-OK status if the request was rejected.
  // It must not block: it is the engine's step loop.
  using Callback = std::function<void(const absl::Status& status, const RequestOutput& output)>;
  // Runs on the engine thread once an import's blocks are reserved (or it failed).
  using ReservedCallback =
      std::function<void(const absl::Status& status, const EngineCore::ImportSlot& slot)>;
  using DoneCallback = std::function<void(const absl::Status& status)>;

  // handoff_quarantine: how long the blocks of a reservation that ends without its KV (cancel,
  // expiry) stay held before reuse. A prefill worker may still be writing into them — a UCX
  // write that already started lands even after its call was cancelled — so this must exceed
  // the prefill side's KV transfer timeout. Zero frees at once (no transfers in flight).
  explicit Engine(std::unique_ptr<EngineCore> core,
                  absl::Duration handoff_quarantine = absl::ZeroDuration());
  // Stops the thread; requests still running end with finish reason abort.
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request. Never blocks on the engine. `request.request_id` must be
  // unique among running requests (a duplicate is rejected with ALREADY_EXISTS).
  void Submit(GenerateRequest request, Callback callback);
  // Aborts a request by its id, whatever its state (queued, running, awaiting KV);
  // its callback gets a last output with finish reason abort. Unknown ids are ignored.
  void Abort(const std::string& request_id);
  // Frees the KV blocks an export_kv request kept (see GenerateRequest::export_kv).
  void ReleaseExportedKv(SeqId seq_id);

  // Decode role. Reserves blocks for the prompt, waiting in FIFO order until they are
  // free, then calls on_reserved. CompleteImport (once the KV bytes are in those blocks)
  // starts decoding; `on_output` gets every chunk, as with Submit. A reservation that is
  // not completed within `import_timeout` is cancelled (its blocks freed, reason abort).
  void SubmitImport(GenerateRequest request, ReservedCallback on_reserved, Callback on_output,
                    absl::Duration import_timeout);
  void CompleteImport(const std::string& request_id, TokenLogprob first, int cached_prompt_tokens,
                      DoneCallback done);

  // Load, as last observed by the engine thread.
  struct Load {
    int running = 0, waiting = 0, free_kv_blocks = 0, total_kv_blocks = 0;
    int64_t queued_prefill_tokens = 0;
    int pending_imports = 0;  // reserved or waiting for blocks, KV not yet arrived
    int exported = 0;         // finished prefills whose blocks are still held
    int quarantined = 0;      // ended reservations whose blocks wait out late writes
    int64_t num_preemptions = 0;
  };
  Load load() const;
  const ModelConfig& model_config() const { return model_config_; }
  // Valid for the engine's lifetime; the bytes change under the engine thread.
  const KvStorage& kv_storage() const { return kv_storage_; }
  int max_model_len() const { return max_model_len_; }

 private:
  enum class Kind { kSubmit, kAbort, kRelease, kImport, kComplete };
  struct Command {
    Kind kind = Kind::kSubmit;
    std::string request_id;
    GenerateRequest request;
    Callback callback;
    ReservedCallback on_reserved;
    DoneCallback done;
    SeqId seq_id = 0;
    TokenLogprob first;
    int cached_prompt_tokens = 0;
    absl::Time deadline;
  };
  struct PendingImport {
    std::string request_id;
    SeqId seq_id = 0;  // 0 until reserved
    GenerateRequest request;
    ReservedCallback on_reserved;
    Callback on_output;
    absl::Time deadline;
  };
  void Push(Command command);
  void Loop();
  void Apply(Command& command);
  void ReserveImports();
  void ExpireImports();
  void ReleaseQuarantine(bool all);
  void EndImport(PendingImport& pending, const absl::Status& status);
  void Deliver(std::vector<RequestOutput>& outputs);
  void PublishLoad();

  std::unique_ptr<EngineCore> core_;  // engine thread only
  const ModelConfig model_config_;
  const KvStorage& kv_storage_;
  const int max_model_len_;
  absl::flat_hash_map<SeqId, Callback> callbacks_;          // engine thread only
  absl::flat_hash_map<std::string, SeqId> ids_;             // engine thread only
  std::deque<PendingImport> imports_;                       // engine thread only
  const absl::Duration handoff_quarantine_;
  std::deque<std::pair<absl::Time, SeqId>> quarantine_;      // engine thread only, by time

  mutable absl::Mutex mu_;
  std::deque<Command> queue_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  Load load_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_CORE_ENGINE_H_
