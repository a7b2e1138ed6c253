#include "engine/core/engine_core.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "engine/sample/stop_checker.h"
#include "engine/util/log.h"
#include "engine/util/status.h"

namespace cleave {

struct EngineCore::Live {
  Live(const Request& req, const Tokenizer* tokenizer, uint64_t fallback_seed)
      : sampler(req.params, req.prompt_ids, fallback_seed),
        decoder(tokenizer),
        stop(req.params, tokenizer->eos_id()) {}
  SequenceSampler sampler;
  IncrementalDecoder decoder;
  StopChecker stop;
  std::string text;    // all output text decoded so far
  size_t emitted = 0;  // bytes of `text` already streamed
  std::chrono::steady_clock::time_point added = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> scheduled;
  bool first_output = true;

  // Fills the queue/prefill timing of the request's first output.
  void StampFirstOutput(RequestOutput* out) {
    if (!first_output) return;
    first_output = false;
    using Ms = std::chrono::duration<double, std::milli>;
    const auto now = std::chrono::steady_clock::now();
    const auto sched = scheduled.value_or(now);
    out->queue_ms = Ms(sched - added).count();
    out->prefill_ms = Ms(now - sched).count();
  }
};

EngineCore::EngineCore(std::unique_ptr<MixtralModel> model, std::unique_ptr<Tokenizer> tokenizer,
                       const EngineConfig& config)
    : config_(config),
      model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      next_fallback_seed_(config.seed * 0x9e3779b97f4a7c15ull + 1) {}

EngineCore::~EngineCore() = default;

absl::StatusOr<std::unique_ptr<EngineCore>> EngineCore::Create(
    std::unique_ptr<MixtralModel> model, std::unique_ptr<Tokenizer> tokenizer,
    const EngineConfig& config) {
  if (config.block_size <= 0) return absl::InvalidArgumentError("block_size must be positive");
  std::unique_ptr<EngineCore> core(new EngineCore(std::move(model), std::move(tokenizer), config));
  const ModelConfig& mc = core->model_->config();
  int num_blocks = config.num_kv_blocks;
  if (num_blocks <= 0) {
    const size_t per_block = core->model_->KvShape(1, config.block_size).BytesPerBlock();
    num_blocks = static_cast<int>(config.kv_cache_mib * (1 << 20) / per_block);
  }
  if (num_blocks < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV cache too small: ", num_blocks, " blocks of ", config.block_size, " tokens"));
  }
  ASSIGN_OR_RETURN(KvStorage storage,
                   KvStorage::Create(core->model_->backend(),
                                     core->model_->KvShape(num_blocks, config.block_size)));
  core->kv_storage_ = std::make_unique<KvStorage>(std::move(storage));
  core->kv_manager_ = std::make_unique<KvCacheManager>(num_blocks, config.block_size,
                                                       config.enable_prefix_caching);
  core->scheduler_ = std::make_unique<Scheduler>(config.scheduler, core->kv_manager_.get());
  // A sequence can never outgrow the whole cache or the model's positions.
  core->max_model_len_ = std::min(mc.max_position_embeddings, num_blocks * config.block_size);
  LOG_INFO("engine: {} KV blocks of {} tokens, max sequence length {}", num_blocks,
           config.block_size, core->max_model_len_);
  return core;
}

absl::StatusOr<std::unique_ptr<Request>> EngineCore::Prepare(GenerateRequest request) {
  const ModelConfig& mc = model_->config();
  RETURN_IF_ERROR(request.params.Validate(mc.vocab_size));
  if (request.prompt_ids.empty()) {
    request.prompt_ids = tokenizer_->Encode(request.prompt, request.add_bos);
  }
  if (request.prompt_ids.empty()) {
    return absl::InvalidArgumentError("prompt: empty (give text or token ids)");
  }
  for (size_t i = 0; i < request.prompt_ids.size(); ++i) {
    const int id = request.prompt_ids[i];
    if (id < 0 || id >= mc.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("prompt_ids[", i, "]: ", id,
                                                     " is outside the vocabulary [0, ",
                                                     mc.vocab_size, ")"));
    }
  }
  const int prompt_len = static_cast<int>(request.prompt_ids.size());
  if (prompt_len >= max_model_len_) {
    return absl::InvalidArgumentError(
        absl::StrCat("prompt: ", prompt_len, " tokens, but this engine holds at most ",
                     max_model_len_ - 1, " prompt tokens (max sequence length ", max_model_len_,
                     ")"));
  }
  auto req = std::make_unique<Request>();
  req->request_id = std::move(request.request_id);
  req->prompt_ids = std::move(request.prompt_ids);
  req->params = std::move(request.params);
  req->export_kv = request.export_kv;
  return req;
}

absl::StatusOr<SeqId> EngineCore::AddRequest(GenerateRequest request) {
  ASSIGN_OR_RETURN(std::unique_ptr<Request> req, Prepare(std::move(request)));
  const Request& ref = *req;
  auto live = std::make_unique<Live>(ref, tokenizer_.get(), next_fallback_seed_++);
  const SeqId id = scheduler_->Add(std::move(req));
  live_[id] = std::move(live);
  return id;
}

absl::StatusOr<EngineCore::ImportSlot> EngineCore::ReserveImport(GenerateRequest request) {
  if (request.export_kv) return absl::InvalidArgumentError("export_kv: an import cannot export");
  ASSIGN_OR_RETURN(std::unique_ptr<Request> req, Prepare(std::move(request)));
  const SeqId id = scheduler_->NewSeqId();
  if (!kv_manager_->Reserve(id, req->num_prompt_tokens())) {
    return absl::ResourceExhaustedError(
        absl::StrCat("KV cache: ", kv_manager_->NumBlocksFor(req->num_prompt_tokens()),
                     " blocks needed, ", kv_manager_->num_free_blocks(), " free"));
  }
  req->seq_id = id;
  ImportSlot slot{.seq_id = id, .blocks = kv_manager_->BlockTable(id)};
  auto live = std::make_unique<Live>(*req, tokenizer_.get(), next_fallback_seed_++);
  imports_[id] = Import{std::move(req), std::move(live)};
  return slot;
}

absl::StatusOr<RequestOutput> EngineCore::CompleteImport(SeqId seq_id, const TokenLogprob& first,
                                                         int cached_prompt_tokens) {
  auto it = imports_.find(seq_id);
  if (it == imports_.end()) return absl::NotFoundError(absl::StrCat("no reserved import ", seq_id));
  Import import = std::move(it->second);
  imports_.erase(it);
  Request& req = *import.req;
  if (first.token < 0 || first.token >= model_->config().vocab_size) {
    kv_manager_->Free(seq_id);
    return absl::InvalidArgumentError(
        absl::StrCat("first_token: ", first.token, " is outside the vocabulary"));
  }
  req.num_computed_tokens = req.num_prompt_tokens();
  req.num_cached_prompt_tokens = cached_prompt_tokens;
  req.output_ids.push_back(first.token);
  // The prefill worker used the first draw of the request's RNG stream.
  import.live->sampler.SkipDraw();
  kv_manager_->Commit(seq_id, req.AllTokens(), req.num_computed_tokens);
  Live* live = import.live.get();
  live->first_output = false;  // the prefill worker timed the prompt
  live_[seq_id] = std::move(import.live);
  scheduler_->AddRunning(std::move(import.req));
  Request& running = *scheduler_->Find(seq_id);
  SampleResult sample{.token = first.token, .logprob = first.logprob, .top_logprobs = first.top};
  RequestOutput out;
  ProcessToken(running, *live, sample, &out);
  return out;
}

void EngineCore::CancelImport(SeqId seq_id) {
  if (imports_.erase(seq_id) > 0) kv_manager_->Free(seq_id);
}

void EngineCore::ReleaseExportedKv(SeqId seq_id) {
  if (exported_.erase(seq_id) > 0) kv_manager_->Free(seq_id);
}

// The prefill role's end of a request: report the first token and keep the prompt's blocks.
void EngineCore::ExportRequest(Request& req, const SampleResult& sample, RequestOutput* out) {
  out->seq_id = req.seq_id;
  out->request_id = req.request_id;
  out->token_ids.push_back(sample.token);
  if (req.params.logprobs >= 0) {
    out->logprobs.push_back({sample.token, sample.logprob, sample.top_logprobs});
  }
  out->finished = true;
  out->finish_reason = FinishReason::kLength;
  out->prompt_tokens = req.num_prompt_tokens();
  out->completion_tokens = 1;
  out->cached_prompt_tokens = req.num_cached_prompt_tokens;
  const std::vector<int>& table = kv_manager_->BlockTable(req.seq_id);
  out->exported_blocks.assign(
      table.begin(), table.begin() + kv_manager_->NumBlocksFor(req.num_prompt_tokens()));
  const SeqId id = req.seq_id;
  scheduler_->FinishKeepingKv(id, FinishReason::kLength);
  scheduler_->TakeFinished(id);
  live_.erase(id);
  exported_.insert(id);
}

void EngineCore::Abort(SeqId seq_id) {
  if (live_.contains(seq_id)) pending_aborts_.push_back(seq_id);
}

bool EngineCore::HasWork() const { return scheduler_->HasWork() || !pending_aborts_.empty(); }

void EngineCore::FinishRequest(SeqId seq_id, FinishReason reason, RequestOutput* out) {
  Request* req = scheduler_->Find(seq_id);
  out->seq_id = seq_id;
  out->request_id = req->request_id;
  out->finished = true;
  out->finish_reason = reason;
  out->prompt_tokens = req->num_prompt_tokens();
  out->completion_tokens = static_cast<int>(req->output_ids.size());
  out->cached_prompt_tokens = req->num_cached_prompt_tokens;
  scheduler_->Finish(seq_id, reason);
  scheduler_->TakeFinished(seq_id);
  live_.erase(seq_id);
}

// Appends the sampled token's text and decides whether the request is done. Text
// that could still turn into a stop string is held back until it cannot.
void EngineCore::ProcessToken(Request& req, Live& live, const SampleResult& sample,
                              RequestOutput* out) {
  out->seq_id = req.seq_id;
  out->request_id = req.request_id;
  out->token_ids.push_back(sample.token);
  if (req.params.logprobs >= 0) {
    out->logprobs.push_back({sample.token, sample.logprob, sample.top_logprobs});
  }
  const int generated = static_cast<int>(req.output_ids.size());
  const FinishReason token_reason = live.stop.CheckToken(sample.token, generated);
  // A token that ends the request with reason stop (EOS, a stop id) adds no text.
  if (token_reason != FinishReason::kStop) live.text += live.decoder.Add(sample.token);
  StopDecision d = live.stop.CheckText(live.text, live.emitted);
  FinishReason reason = d.reason == FinishReason::kStopSequence ? d.reason : token_reason;
  if (reason == FinishReason::kNone && req.num_tokens() >= max_model_len_) {
    reason = FinishReason::kLength;
  }
  size_t emit = d.emit_chars;
  if (reason == FinishReason::kStop || reason == FinishReason::kLength) {
    // Ending for another reason: flush the decoder, then release the held-back tail
    // unless the flushed bytes complete a stop string after all.
    live.text += live.decoder.Finish();
    d = live.stop.CheckText(live.text, live.emitted);
    if (d.reason == FinishReason::kStopSequence) {
      reason = d.reason;
      emit = d.emit_chars;
    } else {
      emit = live.text.size() - live.emitted;
    }
  }
  out->text += live.text.substr(live.emitted, emit);
  live.emitted += emit;
  if (reason != FinishReason::kNone) FinishRequest(req.seq_id, reason, out);
}

void EngineCore::FailBatch(const SchedulerOutput& batch, const absl::Status& status,
                           std::vector<RequestOutput>* outputs) {
  LOG_ERROR("engine: step failed, aborting its {} requests: {}", batch.items.size(),
            status.ToString());
  for (const ScheduledItem& item : batch.items) {
    RequestOutput out;
    FinishRequest(item.req->seq_id, FinishReason::kAbort, &out);
    outputs->push_back(std::move(out));
  }
}

std::vector<RequestOutput> EngineCore::Step() {
  std::vector<RequestOutput> outputs;
  for (SeqId id : pending_aborts_) {
    if (!live_.contains(id)) continue;
    RequestOutput out;
    FinishRequest(id, FinishReason::kAbort, &out);
    outputs.push_back(std::move(out));
  }
  pending_aborts_.clear();

  SchedulerOutput batch = scheduler_->Schedule();
  // Requests the scheduler gave up on (they can never fit) are finished already.
  for (SeqId id : scheduler_->TakeRejected()) {
    auto it = live_.find(id);
    if (it == live_.end()) continue;
    RequestOutput out;
    FinishRequest(id, FinishReason::kAbort, &out);
    outputs.push_back(std::move(out));
  }
  if (batch.empty()) return outputs;

  ForwardBatch fb;
  std::vector<std::vector<int>> token_slices(batch.items.size());
  for (size_t i = 0; i < batch.items.size(); ++i) {
    const ScheduledItem& item = batch.items[i];
    const Request& req = *item.req;
    std::vector<int>& slice = token_slices[i];
    slice.reserve(item.num_new_tokens);
    for (int p = req.num_computed_tokens; p < req.num_computed_tokens + item.num_new_tokens; ++p) {
      slice.push_back(req.token_at(p));
    }
    Live& live = *live_.at(req.seq_id);
    if (!live.scheduled) live.scheduled = std::chrono::steady_clock::now();
    const std::vector<int>& table = kv_manager_->BlockTable(req.seq_id);
    fb.seqs.push_back({.tokens = slice,
                       .start_pos = req.num_computed_tokens,
                       .block_table = table,
                       .want_logits = req.num_computed_tokens + item.num_new_tokens ==
                                      req.num_tokens()});
  }
  if (absl::Status st = model_->Forward(fb, *kv_storage_, &logits_); !st.ok()) {
    FailBatch(batch, st, &outputs);
    return outputs;
  }

  const int vocab = model_->config().vocab_size;
  std::vector<std::optional<int>> sampled(batch.items.size());
  std::vector<SampleResult> samples(batch.items.size());
  int row = 0;
  for (size_t i = 0; i < batch.items.size(); ++i) {
    if (!fb.seqs[i].want_logits) continue;
    Request& req = *batch.items[i].req;
    std::span<float> logits(logits_.data() + static_cast<size_t>(row++) * vocab, vocab);
    if (logits_observer_) logits_observer_(req.seq_id, req.num_tokens() - 1, logits);
    samples[i] = live_.at(req.seq_id)->sampler.Sample(logits, req.output_ids);
    sampled[i] = samples[i].token;
  }
  scheduler_->Update(batch, sampled);
  for (size_t i = 0; i < batch.items.size(); ++i) {
    if (!sampled[i]) continue;
    Request& req = *batch.items[i].req;
    RequestOutput out;
    live_.at(req.seq_id)->StampFirstOutput(&out);
    if (req.export_kv) {
      ExportRequest(req, samples[i], &out);
    } else {
      ProcessToken(req, *live_.at(req.seq_id), samples[i], &out);
    }
    outputs.push_back(std::move(out));
  }
  return outputs;
}

}  // namespace cleave
