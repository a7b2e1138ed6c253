#include "engine/plan/cost.h"

#include <algorithm>
#include <cmath>

namespace cleave::plan {
namespace {

double Log2Ceil(int64_t n) { return n <= 1 ? 0 : std::ceil(std::log2(static_cast<double>(n))); }

// A group that fits in one node talks over NVLink, otherwise over the NICs.
double LinkBandwidth(const Hardware& hw, int64_t n) {
  return n <= hw.gpus_per_node ? hw.intra_node_bytes_per_s : hw.inter_node_bytes_per_s;
}
double LinkLatency(const Hardware& hw, int64_t n) {
  return n <= hw.gpus_per_node ? hw.intra_node_latency_s : hw.inter_node_latency_s;
}

// KV heads per attention rank: heads split by tp, replicated when tp exceeds them.
double KvShard(const PlanModel& m, const ParallelLayout& l) {
  return static_cast<double>(std::min(l.tp, m.kv_heads));
}

double StageEmbeddingParams(const PlanModel& m, const ParallelLayout& l) {
  // Vocab-parallel over tp; stage 0 holds the embedding, the last stage the LM head.
  const double e = static_cast<double>(m.EmbeddingParams()), h = static_cast<double>(m.LmHeadParams());
  return (l.pp == 1 ? e + h : std::max(e, h)) / static_cast<double>(l.tp);
}

struct LayerTime {
  double compute = 0, memory = 0, roofline = 0, allreduce = 0, alltoall = 0;
};

// One layer on the busiest GPU of a stage, for `tokens` new tokens per instance whose
// attention reads `context` positions each (a new token's KV is written once too).
LayerTime Layer(const PlanModel& m, const Hardware& hw, const ParallelLayout& l, double tokens,
                double context, double seqs) {
  const double flops = hw.EffectiveFlops(), bw = hw.EffectiveBandwidth();
  const double groups = static_cast<double>(l.AttentionGroups());
  const double att_gpus = static_cast<double>(l.AttentionGpusPerStage());
  const double exp_gpus = static_cast<double>(l.ExpertGpusPerStage());
  const double dt = static_cast<double>(m.dtype_bytes);
  const double group_tokens = tokens / groups;

  const double att_flops = m.AttentionFlops(group_tokens, context) / static_cast<double>(l.tp);
  const double kv_bytes = (seqs / groups) * (context + tokens / std::max(seqs, 1.0)) *
                          static_cast<double>(m.KvBytesPerTokenPerLayer()) / KvShard(m, l);
  const double att_bytes =
      static_cast<double>(m.DenseParamsPerLayer()) * dt / static_cast<double>(l.tp) + kv_bytes;

  const double exp_flops = m.ExpertFlops(tokens) / exp_gpus;
  const double local_experts = static_cast<double>(m.experts) / static_cast<double>(l.ep);
  const double routings = tokens * static_cast<double>(m.experts_per_token);
  // Experts sharded finer than one per GPU (ep < tp, colocated) split each expert's bytes.
  const double expert_shard = exp_gpus / static_cast<double>(l.ep);
  const double exp_bytes = ExpertsTouched(local_experts, static_cast<double>(m.experts), routings) *
                           static_cast<double>(m.ParamsPerExpertPerLayer()) * dt / expert_shard;

  LayerTime t;
  t.compute = att_flops / flops + exp_flops / flops;
  t.memory = att_bytes / bw + exp_bytes / bw;
  t.roofline = std::max(att_flops / flops, att_bytes / bw) + std::max(exp_flops / flops, exp_bytes / bw);
  const double hidden_bytes = group_tokens * static_cast<double>(m.hidden) * dt;
  if (l.tp > 1) {
    int reductions = 1;  // after the attention output projection
    if (expert_shard > 1) ++reductions;  // TP-sharded experts sum their partial outputs
    t.allreduce = reductions * AllReduceSeconds(hw, l.tp, hidden_bytes);
  }
  const bool remote = l.placement == ExpertPlacement::kRemote;
  if (remote || exp_gpus > 1) {
    const int64_t n = remote ? l.tp + l.ep : l.ExpertGpusPerStage();
    const double per_gpu = AllToAllBytesPerLayer(m, tokens, l.ExpertGpusPerStage(), remote) / att_gpus;
    t.alltoall = AllToAllSeconds(hw, n, per_gpu);
  }
  return t;
}

StepTime Assemble(const PlanModel& m, const Hardware& hw, const ParallelLayout& l, double tokens,
                  double context, double seqs, bool prefill) {
  const double mb = static_cast<double>(std::max<int64_t>(1, std::min<int64_t>(
                        l.micro_batches, static_cast<int64_t>(std::max(1.0, seqs)))));
  const LayerTime lt = Layer(m, hw, l, tokens / mb, context, seqs / mb);
  const double layers = static_cast<double>(m.layers / l.pp);
  StepTime s;
  s.compute_s = layers * lt.compute;
  s.memory_s = layers * lt.memory;
  s.roofline_s = layers * lt.roofline;
  s.tp_allreduce_s = layers * lt.allreduce;
  s.ep_alltoall_s = layers * lt.alltoall;
  if (l.pp > 1) {
    const int64_t span = l.GpusPerStage() * 2;  // neighbouring stages share a node if both fit
    const double bytes = (tokens / mb) * static_cast<double>(m.hidden * m.dtype_bytes) /
                         static_cast<double>(l.AttentionGpusPerStage());
    s.pp_transfer_s = bytes / LinkBandwidth(hw, span) + LinkLatency(hw, span);
  }
  s.stage_s = s.roofline_s + s.tp_allreduce_s + s.ep_alltoall_s + s.pp_transfer_s;
  const double pp = static_cast<double>(l.pp);
  s.bubble = PipelineBubble(l.pp, static_cast<int64_t>(mb));
  // Prefill: the batch's micro-batches fill and drain the pipeline once. Decode: every
  // micro-batch takes one token per round, and a round is never shorter than pp stages.
  s.total_s = prefill ? (mb + pp - 1) * s.stage_s : std::max(mb, pp) * s.stage_s;
  return s;
}

}  // namespace

double MemoryBreakdown::Total() const {
  if (!split_kinds) return dense_weights + expert_weights + kv_cache + activations + comm_buffers;
  return std::max(dense_weights + kv_cache, expert_weights) + activations + comm_buffers;
}

MemoryBreakdown PerGpuMemory(const PlanModel& m, const Hardware& hw, const ParallelLayout& l,
                             double seqs, double tokens_per_seq, double step_tokens) {
  const double dt = static_cast<double>(m.dtype_bytes);
  const double stage_layers = static_cast<double>(m.layers / l.pp);
  const double groups = static_cast<double>(l.AttentionGroups());
  MemoryBreakdown b;
  b.capacity = hw.memory_bytes;
  b.split_kinds = l.placement == ExpertPlacement::kRemote;
  b.dense_weights = (stage_layers * static_cast<double>(m.DenseParamsPerLayer()) / static_cast<double>(l.tp) +
                     StageEmbeddingParams(m, l)) * dt;
  b.expert_weights = stage_layers * static_cast<double>(m.ExpertParamsPerLayer()) * dt /
                     static_cast<double>(l.ExpertGpusPerStage());
  b.kv_cache = (seqs / groups) * tokens_per_seq * stage_layers *
               static_cast<double>(m.KvBytesPerTokenPerLayer()) / KvShard(m, l);
  const double gpu_tokens = step_tokens / static_cast<double>(l.AttentionGpusPerStage());
  const double k = static_cast<double>(m.experts_per_token);
  // Residual, norm output, QKV and attention output (~6 h), the experts' gate/up
  // intermediates (2 k ffn), and the logits of the last position per sequence.
  b.activations = gpu_tokens * dt * (6.0 * static_cast<double>(m.hidden) +
                                     2.0 * k * static_cast<double>(m.expert_ffn)) +
                  kRuntimeReserveBytes;
  if (l.ExpertGpusPerStage() > 1 || b.split_kinds) {
    b.comm_buffers += 4.0 * gpu_tokens * k * static_cast<double>(m.hidden) * dt;  // send+recv, both ways
  }
  if (l.tp > 1) b.comm_buffers += step_tokens / groups * static_cast<double>(m.hidden) * dt;
  return b;
}

double AllReduceSeconds(const Hardware& hw, int64_t n, double bytes) {
  if (n <= 1) return 0;
  const double nn = static_cast<double>(n);
  // Ring: reduce-scatter + all-gather move 2 (n-1)/n of the buffer; latency as a tree.
  return 2.0 * (nn - 1) / nn * bytes / LinkBandwidth(hw, n) + 2.0 * Log2Ceil(n) * LinkLatency(hw, n);
}

double AllToAllSeconds(const Hardware& hw, int64_t n, double bytes_per_gpu) {
  if (n <= 1) return 0;
  // Dispatch and combine each: the GPU's outgoing bytes at link speed, plus latency.
  return bytes_per_gpu / LinkBandwidth(hw, n) + 2.0 * Log2Ceil(n) * LinkLatency(hw, n);
}

double AllToAllBytesPerLayer(const PlanModel& m, double tokens, int64_t n, bool all_remote) {
  const double nn = static_cast<double>(n);
  const double remote_share = all_remote ? 1.0 : (nn - 1) / nn;
  return 2.0 * tokens * static_cast<double>(m.experts_per_token) * static_cast<double>(m.hidden) *
         static_cast<double>(m.dtype_bytes) * remote_share;
}

double PipelineBubble(int64_t pp, int64_t m) {
  if (pp <= 1) return 0;
  return static_cast<double>(pp - 1) / static_cast<double>(m + pp - 1);
}

double ExpertsTouched(double local, double total, double routings) {
  return local * (1.0 - std::pow(1.0 - 1.0 / total, routings));
}

StepTime PrefillStep(const PlanModel& m, const Hardware& hw, const ParallelLayout& l, double seqs,
                     double prompt) {
  // Causal attention: a prompt token sees prompt/2 earlier positions on average.
  return Assemble(m, hw, l, seqs * prompt, prompt / 2.0, seqs, /*prefill=*/true);
}

StepTime DecodeStep(const PlanModel& m, const Hardware& hw, const ParallelLayout& l, double seqs,
                    double context) {
  return Assemble(m, hw, l, seqs, context, seqs, /*prefill=*/false);
}

double SloBoundUtilisation(double service_s, double slo_s) {
  if (service_s <= 0 || service_s > slo_s) return 0;
  const double x = slo_s / service_s - 1.0;
  return std::min(0.95, 2.0 * x / (1.0 + 2.0 * x));
}

}  // namespace cleave::plan
