#include "engine/plan/search.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/plan/review.h"

namespace cleave::plan {
namespace {

std::vector<int64_t> Divisors(int64_t n, int64_t limit) {
  std::vector<int64_t> out;
  for (int64_t d = 1; d <= std::min(n, limit); ++d) {
    if (n % d == 0) out.push_back(d);
  }
  return out;
}

std::vector<ParallelLayout> Layouts(const PlanModel& m, int64_t gpus, const SearchOptions& opt) {
  const LayoutShape shape{m.heads, m.kv_heads, m.layers, m.experts};
  const int64_t cap = std::min(gpus, opt.max_gpus_per_instance);
  std::vector<ParallelLayout> out;
  for (int64_t tp : Divisors(m.heads, cap)) {
    for (int64_t pp : Divisors(m.layers, opt.max_pp)) {
      for (int64_t ep : Divisors(m.experts, cap)) {
        for (auto placement : {ExpertPlacement::kColocated, ExpertPlacement::kRemote}) {
          if (placement == ExpertPlacement::kRemote && !opt.allow_remote) continue;
          ParallelLayout l{tp, pp, ep, 1, placement, 1};
          if (!l.Validate(shape).ok() || l.GpusPerInstance() > cap) continue;
          out.push_back(l);
        }
      }
    }
  }
  return out;
}

std::string Breakdown(const StepTime& s) {
  const double t = s.stage_s > 0 ? s.stage_s : 1;
  return absl::StrFormat("stage %s = compute/memory %.0f%% (%s-bound), TP %.0f%%, EP %.0f%%, PP %.0f%%",
                         Millis(s.stage_s), 100 * s.roofline_s / t,
                         s.compute_s >= s.memory_s ? "compute" : "memory", 100 * s.tp_allreduce_s / t,
                         100 * s.ep_alltoall_s / t, 100 * s.pp_transfer_s / t);
}

void SortCandidates(std::vector<PoolCandidate>& c) {
  std::stable_sort(c.begin(), c.end(), [](const PoolCandidate& a, const PoolCandidate& b) {
    if (a.feasible != b.feasible) return a.feasible;
    if (a.rps_per_gpu != b.rps_per_gpu) return a.rps_per_gpu > b.rps_per_gpu;
    return a.latency_s < b.latency_s;
  });
}

}  // namespace

std::vector<PoolCandidate> PrefillCandidates(const PlanModel& m, const Hardware& hw,
                                             const Workload& wl, int64_t gpus,
                                             const SearchOptions& opt) {
  std::vector<PoolCandidate> out;
  const double prompt = static_cast<double>(wl.prompt_tokens_mean);
  for (ParallelLayout l : Layouts(m, gpus, opt)) {
    l.micro_batches = l.pp;  // successive prompts fill the pipeline
    PoolCandidate c;
    c.layout = l;
    c.batch = 1;
    // One prompt per step: its latency is the TTFT; the pipeline takes a new one per stage.
    ParallelLayout single = l;
    single.micro_batches = 1;
    c.step = PrefillStep(m, hw, single, 1, prompt);
    c.latency_s = c.step.total_s;
    c.memory = PerGpuMemory(m, hw, l, static_cast<double>(l.pp),
                            static_cast<double>(wl.prompt_tokens_max),
                            static_cast<double>(wl.prompt_tokens_max));
    const double rho = SloBoundUtilisation(c.latency_s, wl.ttft_slo_s);
    c.rate_rps = rho / c.step.stage_s;
    c.rps_per_gpu = c.rate_rps / static_cast<double>(l.GpusPerInstance());
    if (!c.memory.Fits()) {
      c.reason = absl::StrCat("does not fit: ", Bytes(c.memory.Total()), " > ", Bytes(c.memory.capacity));
    } else if (rho <= 0) {
      c.reason = absl::StrCat("TTFT ", Millis(c.latency_s), " misses the ", Millis(wl.ttft_slo_s), " SLO");
    } else {
      c.feasible = true;
      c.reason = absl::StrFormat("TTFT %s idle, load up to %.0f%% within the SLO; %s; %s/GPU",
                                 Millis(c.latency_s), 100 * rho, Breakdown(c.step),
                                 Bytes(c.memory.Total()));
    }
    out.push_back(std::move(c));
  }
  SortCandidates(out);
  return out;
}

std::vector<PoolCandidate> DecodeCandidates(const PlanModel& m, const Hardware& hw,
                                            const Workload& wl, int64_t gpus,
                                            const SearchOptions& opt) {
  std::vector<PoolCandidate> out;
  const double context = static_cast<double>(wl.prompt_tokens_mean) + wl.output_tokens / 2.0;
  std::vector<int64_t> batches;
  for (int64_t b = 1; b <= 1024; b *= 2) batches.push_back(b);
  batches.push_back(wl.batch);
  std::sort(batches.begin(), batches.end());
  for (ParallelLayout l : Layouts(m, gpus, opt)) {
    l.micro_batches = l.pp;
    PoolCandidate best;
    best.layout = l;
    std::string why_not;
    for (int64_t b : batches) {
      if (b < l.pp) continue;
      PoolCandidate c;
      c.layout = l;
      c.batch = b;
      // The peak: every sequence at the longest it can be.
      c.memory = PerGpuMemory(m, hw, l, static_cast<double>(b),
                              static_cast<double>(wl.max_sequence_tokens), static_cast<double>(b));
      c.step = DecodeStep(m, hw, l, static_cast<double>(b), context);
      c.latency_s = c.step.total_s;
      if (!c.memory.Fits()) {
        why_not = absl::StrCat("batch ", b, " does not fit: ", Bytes(c.memory.Total()), " > ",
                               Bytes(c.memory.capacity));
        break;
      }
      if (c.latency_s > wl.tpot_slo_s) {
        why_not = absl::StrCat("batch ", b, " TPOT ", Millis(c.latency_s), " > ", Millis(wl.tpot_slo_s), " SLO");
        break;
      }
      c.feasible = true;
      c.rate_rps = static_cast<double>(b) / (c.latency_s * static_cast<double>(wl.output_tokens));
      c.rps_per_gpu = c.rate_rps / static_cast<double>(l.GpusPerInstance());
      c.reason = absl::StrFormat("batch %d at TPOT %s; %s; %s/GPU with KV %s", b, Millis(c.latency_s),
                                 Breakdown(c.step), Bytes(c.memory.Total()), Bytes(c.memory.kv_cache));
      best = c;
    }
    if (!best.feasible) {
      best.reason = why_not.empty() ? "no batch size fits" : why_not;
    } else if (!why_not.empty()) {
      best.reason += absl::StrCat(" (larger: ", why_not, ")");
    }
    out.push_back(std::move(best));
  }
  SortCandidates(out);
  return out;
}

std::vector<Deployment> Search(const PlanModel& m, const Hardware& hw, const Workload& wl,
                               int64_t gpus, size_t top_n, const SearchOptions& opt) {
  constexpr size_t kPerPool = 24;  // the best of each pool; the pairing is quadratic
  const auto pre = PrefillCandidates(m, hw, wl, gpus, opt);
  const auto dec = DecodeCandidates(m, hw, wl, gpus, opt);
  std::vector<Deployment> out;
  for (size_t i = 0; i < std::min(kPerPool, pre.size()) && pre[i].feasible; ++i) {
    for (size_t j = 0; j < std::min(kPerPool, dec.size()) && dec[j].feasible; ++j) {
      const PoolCandidate &p = pre[i], &d = dec[j];
      const int64_t gp = p.layout.GpusPerInstance(), gd = d.layout.GpusPerInstance();
      Deployment best;
      for (int64_t np = 1; np * gp + gd <= gpus; ++np) {
        const int64_t fit = (gpus - np * gp) / gd;
        const auto balanced = static_cast<int64_t>(std::ceil(np * p.rate_rps / d.rate_rps - 1e-9));
        const int64_t nd = std::max<int64_t>(1, std::min(fit, balanced));
        const double good = std::min(np * p.rate_rps, nd * d.rate_rps);
        const int64_t used = np * gp + nd * gd;
        const double per_gpu = good / static_cast<double>(used);
        if (per_gpu > best.goodput_per_gpu * (1 + 1e-9) ||
            (per_gpu >= best.goodput_per_gpu * (1 - 1e-9) && good > best.goodput_rps)) {
          best = {p, d, np, nd, used, good, per_gpu, ""};
        }
      }
      if (best.gpus == 0) continue;
      best.prefill.layout.dp = best.prefill_instances;
      best.decode.layout.dp = best.decode_instances;
      const double pr = best.prefill_instances * p.rate_rps, dr = best.decode_instances * d.rate_rps;
      best.bottleneck = pr <= dr ? absl::StrFormat("prefill-bound (decode %.0f%% busy)", 100 * pr / dr)
                                 : absl::StrFormat("decode-bound (prefill %.0f%% busy)", 100 * dr / pr);
      out.push_back(std::move(best));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const Deployment& a, const Deployment& b) {
    if (a.goodput_per_gpu != b.goodput_per_gpu) return a.goodput_per_gpu > b.goodput_per_gpu;
    return a.goodput_rps > b.goodput_rps;
  });
  if (out.size() > top_n) out.resize(top_n);
  return out;
}

}  // namespace cleave::plan
