// The engine's state machine: one step = schedule → forward → sample → stop checks.
// EngineCore is single-threaded by design; Engine (engine.h) gives it its own thread.
#ifndef CLEAVE_ENGINE_CORE_ENGINE_CORE_H_
#define CLEAVE_ENGINE_CORE_ENGINE_CORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "engine/kv/kv_cache_manager.h"
#include "engine/model/mixtral.h"
#include "engine/runtime/kv_storage.h"
#include "engine/sample/sampler.h"
#include "engine/sample/sampling_params.h"
#include "engine/sched/request.h"
#include "engine/sched/scheduler.h"
#include "engine/tokenizer/tokenizer.h"

namespace cleave {

struct EngineConfig {
  int block_size = 16;
  int num_kv_blocks = 0;      // 0: as many as kv_cache_mib holds
  int64_t kv_cache_mib = 256;
  bool enable_prefix_caching = true;
  SchedulerConfig scheduler;
  uint64_t seed = 0;          // for requests without their own seed
};

struct GenerateRequest {
  std::string request_id;
  std::string prompt;           // used when prompt_ids is empty
  std::vector<int> prompt_ids;
  bool add_bos = true;          // when tokenizing `prompt`
  SamplingParams params;
  // Prefill role: the request ends right after its first token, and its prompt's KV blocks stay
  // allocated (RequestOutput::exported_blocks) until ReleaseExportedKv, so they can be sent.
  bool export_kv = false;
};

struct TokenLogprob {
  int token = 0;
  float logprob = 0.0f;
  std::vector<std::pair<int, float>> top;
};

// What a request produced in one step (a stream chunk).
struct RequestOutput {
  SeqId seq_id = 0;
  std::string request_id;
  std::vector<int> token_ids;         // new this step
  std::vector<TokenLogprob> logprobs; // one per new token, when asked
  std::string text;                   // new text, never a partial UTF-8 character
  bool finished = false;
  FinishReason finish_reason = FinishReason::kNone;
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int cached_prompt_tokens = 0;
  // export_kv requests, on their one (finished) output: the blocks holding the prompt's KV,
  // in sequence order.
  std::vector<int> exported_blocks;
  // On a request's first output: milliseconds from AddRequest until the engine first scheduled
  // it (queue) and from then until this output (prefill). Zero elsewhere.
  double queue_ms = 0;
  double prefill_ms = 0;
};

class EngineCore {
 public:
  static absl::StatusOr<std::unique_ptr<EngineCore>> Create(std::unique_ptr<MixtralModel> model,
                                                            std::unique_ptr<Tokenizer> tokenizer,
                                                            const EngineConfig& config);
  ~EngineCore();

  // Validates (INVALID_ARGUMENT naming the field) and queues the request.
  absl::StatusOr<SeqId> AddRequest(GenerateRequest request);
  // Finishes the request with reason abort at the next step; unknown ids are ignored.
  void Abort(SeqId seq_id);
  // Runs one engine step and returns the outputs it produced.
  std::vector<RequestOutput> Step();
  bool HasWork() const;

  // Prefill role: frees the blocks an export_kv request kept. Unknown ids are ignored.
  void ReleaseExportedKv(SeqId seq_id);

  // Decode role, for a request whose prompt KV another worker computes and writes:
  // ReserveImport validates it and allocates blocks for its whole prompt (RESOURCE_EXHAUSTED
  // when they are not free now; nothing changes then), returning the id and the block table
  // the KV must be written into. Once the bytes are there, CompleteImport starts decoding from
  // the first token the other worker sampled and returns that token's output (which may
  // already finish the request). CancelImport frees a reservation that will not complete.
  struct ImportSlot {
    SeqId seq_id = 0;
    std::vector<int> blocks;
  };
  absl::StatusOr<ImportSlot> ReserveImport(GenerateRequest request);
  absl::StatusOr<RequestOutput> CompleteImport(SeqId seq_id, const TokenLogprob& first,
                                               int cached_prompt_tokens);
  void CancelImport(SeqId seq_id);
  int num_pending_imports() const { return static_cast<int>(imports_.size()); }
  int num_exported() const { return static_cast<int>(exported_.size()); }

  // Called with every logits row the engine samples from, before sampling:
  // (sequence, position of the last token the row belongs to, logits). For tests.
  using LogitsObserver = std::function<void(SeqId, int, std::span<const float>)>;
  void set_logits_observer(LogitsObserver observer) { logits_observer_ = std::move(observer); }

  const ModelConfig& model_config() const { return model_->config(); }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const KvCacheManager& kv_manager() const { return *kv_manager_; }
  const KvStorage& kv_storage() const { return *kv_storage_; }
  const Scheduler& scheduler() const { return *scheduler_; }
  int max_model_len() const { return max_model_len_; }

 private:
  struct Live;  // per-request sampler, detokenizer and stop state
  EngineCore(std::unique_ptr<MixtralModel> model, std::unique_ptr<Tokenizer> tokenizer,
             const EngineConfig& config);
  // Validates and tokenizes; the Request is ready for the scheduler.
  absl::StatusOr<std::unique_ptr<Request>> Prepare(GenerateRequest request);
  void FinishRequest(SeqId seq_id, FinishReason reason, RequestOutput* out);
  void ExportRequest(Request& req, const SampleResult& sample, RequestOutput* out);
  void ProcessToken(Request& req, Live& live, const SampleResult& sample, RequestOutput* out);
  void FailBatch(const SchedulerOutput& batch, const absl::Status& status,
                 std::vector<RequestOutput>* outputs);

  EngineConfig config_;
  std::unique_ptr<MixtralModel> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<KvStorage> kv_storage_;
  std::unique_ptr<KvCacheManager> kv_manager_;
  std::unique_ptr<Scheduler> scheduler_;
  absl::flat_hash_map<SeqId, std::unique_ptr<Live>> live_;
  std::vector<SeqId> pending_aborts_;
  struct Import {
    std::unique_ptr<Request> req;
    std::unique_ptr<Live> live;
  };
  absl::flat_hash_map<SeqId, Import> imports_;  // reserved, KV not yet arrived
  absl::flat_hash_set<SeqId> exported_;         // finished, KV blocks still held
  int max_model_len_ = 0;
  uint64_t next_fallback_seed_;
  LogitsObserver logits_observer_;
  std::vector<float> logits_;  // reused across steps
};

}  // namespace cleave

#endif  // CLEAVE_ENGINE_CORE_ENGINE_CORE_H_
