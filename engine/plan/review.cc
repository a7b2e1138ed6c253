#include "engine/plan/review.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/plan/cost.h"

namespace cleave::plan {

std::string Count(double n) {
  if (std::fabs(n) >= 1e9) return absl::StrFormat("%.2f B", n / 1e9);
  if (std::fabs(n) >= 1e6) return absl::StrFormat("%.1f M", n / 1e6);
  if (std::fabs(n) >= 1e3) return absl::StrFormat("%.1f K", n / 1e3);
  return absl::StrFormat("%.0f", n);
}

std::string Bytes(double b) {
  if (std::fabs(b) >= 1e9) return absl::StrFormat("%.2f GB", b / 1e9);
  if (std::fabs(b) >= 1e6) return absl::StrFormat("%.1f MB", b / 1e6);
  return absl::StrFormat("%.1f KB", b / 1e3);
}

std::string Millis(double s) { return absl::StrFormat("%.2f ms", s * 1e3); }

const Finding* FindFinding(const std::vector<Finding>& findings, const std::string& id) {
  for (const Finding& f : findings) {
    if (f.id == id) return &f;
  }
  return nullptr;
}

namespace {

std::string Pct(double f) { return absl::StrFormat("%.1f%%", f * 100); }

bool Off(double claimed, double actual, double tolerance) {
  return std::fabs(claimed - actual) > tolerance * std::fabs(actual);
}

// What the document's degrees become on its stated GPU count under cleave's semantics:
// the GPUs left per pipeline stage of a replica all hold experts (colocated EP). When EP
// and TP are read as separate axes (each expert TP-split over an EP group), this is the
// same memory and work per GPU.
ParallelLayout Realize(const PlanModel& m, const ParallelLayout& l, int64_t gpus) {
  ParallelLayout r = l;
  r.placement = ExpertPlacement::kColocated;
  if (gpus % (l.dp * l.pp) != 0) return r;
  const int64_t stage = gpus / (l.dp * l.pp);
  if (stage % l.tp == 0 && m.experts % stage == 0) r.ep = stage;
  return r;
}

class Reviewer {
 public:
  explicit Reviewer(const PlanFile& p)
      : p_(p), m_(p.model), hw_(p.hardware), wl_(p.workload), c_(p.claims) {}

  std::vector<Finding> Run() {
    stated_gpus_ = c_.Get("gpus").value_or(static_cast<double>(p_.gpus));
    if (p_.layout) {
      layout_ = *p_.layout;
      real_ = Realize(m_, layout_, static_cast<int64_t>(stated_gpus_));
      GpuCount();
      ExpertPlacementCheck();
    }
    Parameters();
    if (p_.layout) {
      Memory();
      Performance();
      Phases();
    }
    return std::move(out_);
  }

 private:
  void Add(std::string id, bool bad, std::string msg, std::optional<double> claimed = std::nullopt,
           std::optional<double> corrected = std::nullopt) {
    out_.push_back({std::move(id), bad, std::move(msg), claimed, corrected});
  }

  void GpuCount() {
    const ParallelLayout& l = layout_;
    const double product = static_cast<double>(l.ProductCount());
    const double cleave = static_cast<double>(l.GpuCount());
    std::string degrees = absl::StrCat("EP", l.ep, " x TP", l.tp, " x PP", l.pp, " x DP", l.dp);
    std::string sem = absl::StrCat("under cleave's semantics (", PlacementName(l.placement),
                                   " experts: a stage is ", l.GpusPerStage(), " GPUs) it occupies ",
                                   l.GpuCount(), " GPUs");
    if (product != stated_gpus_) {
      Add("gpu-count", true,
          absl::StrCat(degrees, " = ", l.ProductCount(), " GPUs, not the stated ", stated_gpus_,
                       "; ", sem, ". On ", stated_gpus_, " GPUs the degrees that fit are ",
                       real_.ToString(), " (", real_.GpuCount(), " GPUs)"),
          stated_gpus_, product);
    } else if (cleave != stated_gpus_) {
      Add("gpu-count", false,
          absl::StrCat(degrees, " = ", l.ProductCount(), " as stated, counting EP and TP as separate "
                       "axes (each expert split TP ways inside its EP group); ", sem,
                       ". The same per-GPU work and memory on ", stated_gpus_, " GPUs is ",
                       real_.ToString()),
          stated_gpus_, product);
    }
  }

  void ExpertPlacementCheck() {
    const double stage = stated_gpus_ / static_cast<double>(layout_.dp * layout_.pp);
    const double experts = static_cast<double>(m_.experts);
    const double needed = experts / stage;  // experts per GPU when a stage's GPUs share them
    std::string ctx = absl::StrCat(stated_gpus_, " GPUs / (DP", layout_.dp, " x PP", layout_.pp,
                                   ") = ", stage, " GPUs hold a pipeline stage of one replica");
    const auto claim = c_.Get("experts_per_gpu");
    if (claim && *claim * stage < experts) {
      Add("experts-per-gpu", true,
          absl::StrCat(Count(experts), " experts one per GPU need ", m_.experts,
                       " GPUs per stage, but ", ctx, ": each GPU holds ", needed,
                       " experts of every layer in its stage"),
          *claim, needed);
    } else {
      Add("experts-per-gpu", false,
          absl::StrCat(ctx, "; ", m_.experts, " experts give ", needed, " expert(s) of weights per GPU",
                       claim ? absl::StrCat(" (claimed ", *claim, " per EP rank: holds)") : ""),
          claim, needed);
    }
  }

  void Parameters() {
    const double total = static_cast<double>(m_.TotalParams());
    const double dense = static_cast<double>(m_.DenseParams());
    const double expert = static_cast<double>(m_.ExpertParams());
    const double per_expert = static_cast<double>(m_.layers * m_.ParamsPerExpertPerLayer());
    if (auto stated = m_.stated_total_params.has_value() ? m_.stated_total_params : c_.Get("total_params")) {
      // Expert FFN width that would make the stated total, other dimensions kept.
      const double ffn_for_stated = (*stated - dense) / static_cast<double>(m_.layers * m_.experts * 3 * m_.hidden);
      Add("total-params", Off(*stated, total, 0.05),
          absl::StrCat("the dimensions give ", Count(total), " parameters (dense ", Count(dense),
                       ": attention ", Count(static_cast<double>(m_.layers * m_.AttentionParamsPerLayer())),
                       ", embeddings+LM head ", Count(static_cast<double>(m_.EmbeddingParams() + m_.LmHeadParams())),
                       "; experts ", Count(expert), " = ", m_.layers, " layers x ", m_.experts, " x 3 x ",
                       m_.hidden, " x ", m_.expert_ffn, "), not the stated ", Count(*stated),
                       ". The stated total needs an expert FFN of ~", absl::StrFormat("%.0f", ffn_for_stated),
                       ", not ", m_.expert_ffn),
          *stated, total);
    }
    if (auto d = c_.Get("dense_params")) {
      Add("dense-params", Off(*d, dense, 0.1),
          absl::StrCat("non-expert parameters are ", Count(dense), ", not ", Count(*d)), *d, dense);
    }
    if (auto e = c_.Get("expert_params")) {
      Add("expert-params", Off(*e, expert, 0.1),
          absl::StrCat("expert parameters are ", Count(expert), ", not ", Count(*e)), *e, expert);
    }
    if (auto e = c_.Get("params_per_expert")) {
      Add("params-per-expert", Off(*e, per_expert, 0.1),
          absl::StrCat("one expert across ", m_.layers, " layers is 3 x ", m_.hidden, " x ", m_.expert_ffn,
                       " x ", m_.layers, " = ", Count(per_expert), ", not ", Count(*e)),
          *e, per_expert);
    }
  }

  // Per-GPU figures on the realized layout at the workload's peak: each replica holds
  // batch/dp sequences at max_sequence_tokens, and prefills them in micro-batches.
  MemoryBreakdown PeakMemory() const {
    const double seqs = static_cast<double>(wl_.batch) / static_cast<double>(real_.dp);
    const double mb = static_cast<double>(std::max<int64_t>(1, real_.micro_batches));
    return PerGpuMemory(m_, hw_, real_, seqs, static_cast<double>(wl_.max_sequence_tokens),
                        seqs / mb * static_cast<double>(wl_.prompt_tokens_max));
  }

  void Memory() {
    const MemoryBreakdown mem = PeakMemory();
    const double dt = static_cast<double>(m_.dtype_bytes);
    const double weights = mem.dense_weights + mem.expert_weights;
    const double stated_total = m_.stated_total_params.value_or(static_cast<double>(m_.TotalParams()));
    const double replica_gpus = stated_gpus_ / static_cast<double>(layout_.dp);
    const std::string on = absl::StrCat(" on ", real_.ToString(), " (busiest stage)");
    if (auto b = c_.Get("param_bytes_per_gpu")) {
      Add("param-bytes-per-gpu", Off(*b, weights, 0.1),
          absl::StrCat("claimed ", Bytes(*b), ". Stated total / all GPUs = ", Count(stated_total / stated_gpus_),
                       " parameters = ", Bytes(stated_total / stated_gpus_ * dt), " at ", dt,
                       " bytes each; DP", layout_.dp, " keeps a full copy per replica, so even the stated ",
                       Count(stated_total), " is ", Bytes(stated_total / replica_gpus * dt),
                       " per GPU. From the dimensions: ", Bytes(weights), " (dense ", Bytes(mem.dense_weights),
                       " + experts ", Bytes(mem.expert_weights), ")", on),
          *b, weights);
    }
    if (auto n = c_.Get("params_per_gpu")) {
      Add("params-per-gpu", Off(*n, weights / dt, 0.1),
          absl::StrCat("claimed ", Count(*n), " (total / ", stated_gpus_, " GPUs) ignores that DP",
                       layout_.dp, " replicates the weights: stated total / ", replica_gpus, " GPUs = ",
                       Count(stated_total / replica_gpus), "; from the dimensions ", Count(weights / dt), on),
          *n, weights / dt);
    }
    if (auto e = c_.Get("expert_params_per_gpu")) {
      Add("expert-params-per-gpu", Off(*e, mem.expert_weights / dt, 0.1),
          absl::StrCat("claimed ", Count(*e), " (experts per EP rank x a whole expert, all layers); a GPU holds its "
                       "EP rank's experts only for its stage's ", m_.layers / real_.pp, " layers, split TP ways: ",
                       Count(mem.expert_weights / dt), on),
          *e, mem.expert_weights / dt);
    }
    if (auto cap = c_.Get("param_capacity_per_gpu")) {
      Add("param-capacity", true,
          absl::StrCat("claimed ", Bytes(*cap), " of parameters per GPU (GPU memory / GPU count): every GPU has its own ",
                       Bytes(hw_.memory_bytes), "; the cluster holds ", Bytes(hw_.memory_bytes * stated_gpus_),
                       ", and the whole model (", Bytes(static_cast<double>(m_.TotalParams()) * dt),
                       ") fits on one GPU"),
          *cap, hw_.memory_bytes);
    }
    if (auto o = c_.Get("optimizer_bytes_per_gpu")) {
      Add("optimizer-state", true,
          absl::StrCat("claimed ", Bytes(*o), " of optimizer state: serving keeps none (no gradients, no "
                       "momentum; 1F1B's backward and the DP gradient all-reduce do not exist in inference)"),
          *o, 0.0);
    }
    if (auto a = c_.Get("activation_bytes_per_gpu")) {
      Add("activations", Off(*a, mem.activations, 1.0),
          absl::StrCat("claimed ", Bytes(*a), "; a prefill step of ",
                       wl_.batch / real_.dp / std::max<int64_t>(1, real_.micro_batches), " prompts x ",
                       wl_.prompt_tokens_max, " tokens needs ", Bytes(mem.activations),
                       " per GPU (", Bytes(kRuntimeReserveBytes), " runtime reserve included)", on),
          *a, mem.activations);
    }
    const double kv_total = static_cast<double>(wl_.batch) * static_cast<double>(wl_.max_sequence_tokens) *
                            static_cast<double>(m_.KvBytesPerToken());
    Add("kv-cache", !c_.values.empty(),
        absl::StrCat("the workload's KV cache is never counted: ", m_.KvBytesPerToken() / 1024,
                     " KiB/token (2 x ", m_.layers, " layers x ", m_.kv_heads, " heads x ", m_.head_dim,
                     " x ", m_.dtype_bytes, " B) x ", wl_.batch, " sequences x ", wl_.max_sequence_tokens,
                     " tokens = ", Bytes(kv_total), " (", absl::StrFormat("%.1f", kv_total / (1ull << 30)),
                     " GiB) in all, ", Bytes(mem.kv_cache), " per GPU", on),
        std::nullopt, kv_total);
    const double total = mem.Total();
    if (auto t = c_.Get("total_bytes_per_gpu")) {
      Add("total-memory", Off(*t, total, 0.2),
          absl::StrCat("claimed ", Bytes(*t), "; weights ", Bytes(weights), " + KV ", Bytes(mem.kv_cache),
                       " + activations ", Bytes(mem.activations), " + comm buffers ", Bytes(mem.comm_buffers),
                       " = ", Bytes(total), " of ", Bytes(hw_.memory_bytes), mem.Fits() ? " (fits)" : " (DOES NOT FIT)", on),
          *t, total);
    }
    if (auto u = c_.Get("memory_utilization")) {
      const double own = c_.Get("total_bytes_per_gpu").value_or(total) / hw_.memory_bytes;
      Add("memory-utilization", Off(*u, own, 0.2),
          absl::StrCat("claimed ", Pct(*u), "; the document's own ", Bytes(c_.Get("total_bytes_per_gpu").value_or(total)),
                       " of ", Bytes(hw_.memory_bytes), " is ", Pct(own), "; the planner's peak is ",
                       Pct(total / hw_.memory_bytes)),
          *u, total / hw_.memory_bytes);
    }
  }

  void Performance() {
    const double seqs = static_cast<double>(wl_.batch) / static_cast<double>(real_.dp);
    const double layers = static_cast<double>(m_.layers);
    const double stage_layers = layers / static_cast<double>(real_.pp);
    const StepTime pre = PrefillStep(m_, hw_, real_, seqs, static_cast<double>(wl_.prompt_tokens_max));
    const StepTime dec = DecodeStep(m_, hw_, real_, seqs, static_cast<double>(wl_.max_sequence_tokens));
    const double pre_layer = pre.roofline_s / stage_layers;
    const double dec_layer = dec.roofline_s / stage_layers;
    const double bubble = PipelineBubble(layout_.pp, std::max<int64_t>(1, layout_.micro_batches));
    const auto compute = c_.Get("compute_s_per_layer");
    const auto comm = c_.Get("comm_s_per_layer");
    if (auto u = c_.Get("compute_utilization")) {
      Add("compute-utilization", *u > hw_.mfu,
          absl::StrCat("claimed ", Pct(*u), " of peak, above the ", Pct(hw_.mfu),
                       " MFU the document itself assumes"),
          *u, hw_.mfu);
    }
    if (compute) {
      Add("compute-per-layer", Off(*compute, pre_layer, 0.5),
          absl::StrCat("claimed ", Millis(*compute), " per layer; at ", Pct(hw_.mfu), " of ",
                       absl::StrFormat("%.0f", hw_.peak_flops / 1e12), " TFLOP/s the planner gives ",
                       Millis(pre_layer), " per layer to prefill ", seqs, " prompts x ", wl_.prompt_tokens_max,
                       " tokens per replica (per micro-batch), and ", Millis(dec_layer),
                       " per layer for a decode step of ", seqs, " sequences"),
          *compute, pre_layer);
    }
    if (auto b = c_.Get("pipeline_bubble")) {
      Add("pipeline-bubble", Off(*b, bubble, 0.2),
          absl::StrCat("claimed ", Pct(*b), "; PP", layout_.pp, " fed ", layout_.micro_batches,
                       " micro-batch(es) per replica idles (pp-1)/(m+pp-1) = ", Pct(bubble),
                       ". A ", Pct(*b), " bubble needs ",
                       absl::StrFormat("%.0f", (layout_.pp - 1) * (1 - *b) / *b), " micro-batches"),
          *b, bubble);
    }
    if (auto o = c_.Get("comm_overhead")) {
      const double own = comm && compute ? *comm / (*comm + *compute) : *o;
      const double planner = (pre.tp_allreduce_s + pre.ep_alltoall_s + pre.pp_transfer_s) / pre.stage_s;
      Add("comm-overhead", Off(*o, own, 0.1),
          absl::StrCat("claimed ", Pct(*o), "; the document's own per-layer figures give ", Pct(own),
                       "; the planner's prefill step spends ", Pct(planner), " in TP all-reduce, EP all-to-all and PP transfers"),
          *o, own);
    }
    if (auto lat = c_.Get("latency_s")) {
      // The document's own arithmetic, with its own bubble figure where it gives one.
      const double own_bubble = c_.Get("pipeline_bubble").value_or(bubble);
      const double own = compute && comm ? layers * (*compute + *comm) / (1 - own_bubble) : *lat;
      Add("latency", Off(*lat, own, 0.1),
          absl::StrCat("claimed ", Millis(*lat), " per batch; the document's own ", layers, " layers x (",
                       Millis(compute.value_or(0)), " + ", Millis(comm.value_or(0)), ") with a ",
                       Pct(own_bubble), " bubble is ", Millis(own), ". The planner: prefilling the replica's batch takes ",
                       Millis(pre.total_s), "; a decode step at full context ", Millis(dec.total_s)),
          *lat, own);
    }
    if (auto tput = c_.Get("throughput_tokens_per_s")) {
      const double dp = static_cast<double>(real_.dp);
      const double decode_tput = seqs * dp / dec.total_s;
      const double lat = c_.Get("latency_s").value_or(dec.total_s);
      Add("throughput", true,
          absl::StrCat("claimed ", Count(*tput), " tokens/s. With its ", Millis(lat), " per batch of ", wl_.batch,
                       " sequences that is ", Count(static_cast<double>(wl_.batch) / lat),
                       " tokens/s as decode steps, or ", Count(static_cast<double>(wl_.batch * wl_.prompt_tokens_max) / lat),
                       " tokens/s as prefills. The planner: decode ", Count(decode_tput), " tokens/s at full context, prefill ",
                       Count(seqs * dp * static_cast<double>(wl_.prompt_tokens_max) / pre.total_s), " tokens/s"),
          *tput, decode_tput);
    }
    if (auto base = c_.Get("alltoall_baseline_ep")) {
      const double tokens = seqs;
      const double ours = AllToAllBytesPerLayer(m_, tokens, layout_.ep, false);
      const double theirs = AllToAllBytesPerLayer(m_, tokens, static_cast<int64_t>(*base), false);
      Add("alltoall-volume", false,
          absl::StrCat("EP", layout_.ep, " moves (ep-1)/ep of each token's ", m_.experts_per_token, " x ",
                       m_.hidden, " activations per MoE layer: ", Pct(ours / theirs), " of EP",
                       static_cast<int64_t>(*base), "'s volume, only ", Pct(1 - ours / theirs),
                       " less; what drops is the number of peers (", layout_.ep - 1, " vs ",
                       static_cast<int64_t>(*base) - 1, ")"),
          std::nullopt, ours / theirs);
    }
  }

  void Phases() {
    if (!c_.per_phase_strategy) return;
    Add("per-phase", true,
        "the document argues for different prefill and decode strategies, then gives one layout for "
        "both; `cleave plan search` chooses each pool's layout and the GPU split between them");
  }

  const PlanFile& p_;
  const PlanModel& m_;
  const Hardware& hw_;
  const Workload& wl_;
  const Claims& c_;
  double stated_gpus_ = 0;
  ParallelLayout layout_;
  ParallelLayout real_;
  std::vector<Finding> out_;
};

}  // namespace

std::vector<Finding> Review(const PlanFile& plan) { return Reviewer(plan).Run(); }

}  // namespace cleave::plan
