// Serving benchmarks on real processes (127.0.0.1), each printing cleave's two arrangements
// side by side from one run:
//   router    per-token latency of a stream through the router vs the same stream read
//             straight from the worker's Decode RPC (a colocated worker serves both paths).
//   disagg    a mixed workload — long generations running while long prompts arrive — on
//             1 prefill + 1 decode worker vs 2 colocated workers: TTFT of the long prompts
//             and inter-token latency of the running generations.
//
//   cleave_serving_bench --model DIR [--build-dir DIR] [--scenario router|disagg|all]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cleave/v1/generation.grpc.pb.h"
#include "cleave/v1/handoff.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "tools/cleave/local_cluster.h"

namespace cleave {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5))];
}

double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / v.size();
}

// What one stream looked like from the client.
struct Trace {
  bool ok = false;
  std::string error;
  double ttft_ms = 0;
  std::vector<double> gaps_ms;  // between successive token-bearing chunks, per token
};

template <typename Reader, typename Msg, typename TokensOf>
Trace Consume(Reader& reader, Msg& msg, Clock::time_point start, TokensOf tokens_of) {
  Trace t;
  Clock::time_point last{};
  while (reader->Read(&msg)) {
    const int n = tokens_of(msg);
    if (n == 0) continue;
    const Clock::time_point now = Clock::now();
    if (last == Clock::time_point{}) {
      t.ttft_ms = Ms(now - start);
    } else {
      for (int i = 0; i < n; ++i) t.gaps_ms.push_back(Ms(now - last) / n);
    }
    last = now;
  }
  grpc::Status st = reader->Finish();
  t.ok = st.ok();
  t.error = st.error_message();
  return t;
}

v1::SamplingParams Greedy(int max_tokens) {
  v1::SamplingParams s;
  s.set_temperature(0);
  s.set_max_tokens(max_tokens);
  s.set_ignore_eos(true);
  return s;
}

Trace ViaRouter(v1::Generation::Stub* stub, std::vector<int> prompt, int max_tokens) {
  v1::GenerateRequest req;
  for (int t : prompt) req.mutable_token_ids()->add_ids(t);
  *req.mutable_sampling() = Greedy(max_tokens);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
  const Clock::time_point start = Clock::now();
  auto reader = stub->Generate(&ctx, req);
  v1::GenerateResponse msg;
  return Consume(reader, msg, start, [](const v1::GenerateResponse& m) { return m.token_ids_size(); });
}

Trace Direct(v1::Decode::Stub* stub, std::vector<int> prompt, int max_tokens, int seq) {
  v1::DecodeRequest req;
  req.set_request_id(absl::StrCat("direct-", seq));
  for (int t : prompt) req.add_prompt_ids(t);
  *req.mutable_sampling() = Greedy(max_tokens);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(300));
  const Clock::time_point start = Clock::now();
  auto reader = stub->Decode(&ctx, req);
  v1::DecodeResponse msg;
  return Consume(reader, msg, start,
                 [](const v1::DecodeResponse& m) { return m.chunk().token_ids_size(); });
}

std::vector<int> Prompt(int len, int salt) {
  std::vector<int> p(len);
  for (int i = 0; i < len; ++i) p[i] = 3 + (i * 7 + salt * 13) % 200;
  return p;
}

absl::StatusOr<std::unique_ptr<launch::LocalCluster>> StartCluster(const std::string& model,
                                                                  const std::string& build_dir,
                                                                  int prefill, int decode,
                                                                  int colocated) {
  launch::ClusterSpec spec;
  spec.model = model;
  for (launch::WorkerSpec* w : {&spec.prefill, &spec.decode, &spec.colocated}) {
    w->kv_cache_mib = 256;
    w->max_num_batched_tokens = 512;
  }
  spec.prefill.replicas = prefill;
  spec.decode.replicas = decode;
  spec.colocated.replicas = colocated;
  spec.policy = "least_load";
  auto binaries = launch::ServiceBinaries::InBuildDir(build_dir);
  if (!binaries.ok()) return binaries.status();
  char dir[] = "/tmp/cleave-bench-XXXXXX";
  if (mkdtemp(dir) == nullptr) return absl::InternalError("mkdtemp");
  return launch::LocalCluster::Start(spec, *binaries, dir, absl::Seconds(120));
}

int RouterOverhead(const std::string& model, const std::string& build_dir) {
  auto cluster = StartCluster(model, build_dir, 0, 0, 1);
  if (!cluster.ok()) {
    std::fprintf(stderr, "cluster: %s\n", cluster.status().ToString().c_str());
    return 1;
  }
  auto router = v1::Generation::NewStub(grpc::CreateChannel(
      (*cluster)->router_address(), grpc::InsecureChannelCredentials()));
  auto worker = v1::Decode::NewStub(grpc::CreateChannel(
      (*cluster)->ByRole(launch::Role::kColocated)[0]->address(),
      grpc::InsecureChannelCredentials()));
  constexpr int kRounds = 6, kTokens = 256;
  std::vector<double> via_gaps, direct_gaps, via_ttft, direct_ttft;
  ViaRouter(router.get(), Prompt(16, 0), 8);  // warm-up: connections, first-touch memory
  Direct(worker.get(), Prompt(16, 0), 8, -1);
  for (int r = 0; r < kRounds; ++r) {  // interleaved, so drift hits both paths alike
    Trace a = ViaRouter(router.get(), Prompt(16, r), kTokens);
    Trace b = Direct(worker.get(), Prompt(16, r), kTokens, r);
    if (!a.ok || !b.ok) {
      std::fprintf(stderr, "stream failed: %s %s\n", a.error.c_str(), b.error.c_str());
      return 1;
    }
    via_gaps.insert(via_gaps.end(), a.gaps_ms.begin(), a.gaps_ms.end());
    direct_gaps.insert(direct_gaps.end(), b.gaps_ms.begin(), b.gaps_ms.end());
    via_ttft.push_back(a.ttft_ms);
    direct_ttft.push_back(b.ttft_ms);
  }
  std::printf("router overhead: %d rounds x %d greedy tokens, one colocated worker\n", kRounds,
              kTokens);
  std::printf("%-22s %12s %12s %8s\n", "per-token latency", "via router", "direct", "ratio");
  auto row = [](const char* name, double a, double b) {
    std::printf("%-22s %9.3f ms %9.3f ms %7.3fx\n", name, a, b, b > 0 ? a / b : 0);
  };
  row("mean", Mean(via_gaps), Mean(direct_gaps));
  row("p50", Percentile(via_gaps, 0.5), Percentile(direct_gaps, 0.5));
  row("p90", Percentile(via_gaps, 0.9), Percentile(direct_gaps, 0.9));
  row("p99", Percentile(via_gaps, 0.99), Percentile(direct_gaps, 0.99));
  row("ttft p50", Percentile(via_ttft, 0.5), Percentile(direct_ttft, 0.5));
  std::printf("added per-token latency: %.1f%% (mean)\n\n",
              100.0 * (Mean(via_gaps) / Mean(direct_gaps) - 1.0));
  return 0;
}

struct MixedResult {
  std::vector<double> long_prompt_ttft, gen_gaps;
  int failures = 0;
};

// Long generations start first; long prompts arrive while they run.
MixedResult MixedWorkload(v1::Generation::Stub* stub) {
  constexpr int kGenerations = 6, kGenTokens = 400, kLongPrompts = 8, kLongLen = 1500;
  MixedResult r;
  std::vector<Trace> gens(kGenerations), prompts(kLongPrompts);
  std::vector<std::thread> threads;
  for (int i = 0; i < kGenerations; ++i) {
    threads.emplace_back([&, i] { gens[i] = ViaRouter(stub, Prompt(24, i), kGenTokens); });
  }
  absl::SleepFor(absl::Milliseconds(150));
  for (int i = 0; i < kLongPrompts; ++i) {
    threads.emplace_back([&, i] { prompts[i] = ViaRouter(stub, Prompt(kLongLen, 100 + i), 8); });
    absl::SleepFor(absl::Milliseconds(120));
  }
  for (std::thread& t : threads) t.join();
  for (const Trace& t : gens) {
    r.failures += t.ok ? 0 : 1;
    r.gen_gaps.insert(r.gen_gaps.end(), t.gaps_ms.begin(), t.gaps_ms.end());
  }
  for (const Trace& t : prompts) {
    r.failures += t.ok ? 0 : 1;
    r.long_prompt_ttft.push_back(t.ttft_ms);
  }
  return r;
}

int DisaggVsColocated(const std::string& model, const std::string& build_dir) {
  MixedResult results[2];
  const char* names[2] = {"1P+1D", "2 colocated"};
  for (int k = 0; k < 2; ++k) {
    auto cluster = k == 0 ? StartCluster(model, build_dir, 1, 1, 0)
                          : StartCluster(model, build_dir, 0, 0, 2);
    if (!cluster.ok()) {
      std::fprintf(stderr, "cluster: %s\n", cluster.status().ToString().c_str());
      return 1;
    }
    auto stub = v1::Generation::NewStub(grpc::CreateChannel(
        (*cluster)->router_address(), grpc::InsecureChannelCredentials()));
    ViaRouter(stub.get(), Prompt(16, 0), 8);  // warm-up
    results[k] = MixedWorkload(stub.get());
    (*cluster)->Stop();
    if (results[k].failures > 0) {
      std::fprintf(stderr, "%s: %d requests failed\n", names[k], results[k].failures);
      return 1;
    }
  }
  std::printf("disaggregated vs colocated: 6 generations of 400 tokens running while 8 prompts "
              "of 1500 tokens arrive 120 ms apart\n");
  std::printf("%-28s %12s %12s %8s\n", "", names[0], names[1], "ratio");
  auto row = [](const char* name, double a, double b) {
    std::printf("%-28s %9.2f ms %9.2f ms %7.3fx\n", name, a, b, b > 0 ? a / b : 0);
  };
  const MixedResult& d = results[0];
  const MixedResult& c = results[1];
  row("generation ITL p50", Percentile(d.gen_gaps, 0.5), Percentile(c.gen_gaps, 0.5));
  row("generation ITL p90", Percentile(d.gen_gaps, 0.9), Percentile(c.gen_gaps, 0.9));
  row("generation ITL p99", Percentile(d.gen_gaps, 0.99), Percentile(c.gen_gaps, 0.99));
  row("generation ITL max", Percentile(d.gen_gaps, 1.0), Percentile(c.gen_gaps, 1.0));
  row("long-prompt TTFT p50", Percentile(d.long_prompt_ttft, 0.5),
      Percentile(c.long_prompt_ttft, 0.5));
  row("long-prompt TTFT p90", Percentile(d.long_prompt_ttft, 0.9),
      Percentile(c.long_prompt_ttft, 0.9));
  std::printf("\n");
  return 0;
}

}  // namespace
}  // namespace cleave

int main(int argc, char** argv) {
  std::string model, build_dir = "build", scenario = "all";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--model") model = argv[i + 1];
    else if (flag == "--build-dir") build_dir = argv[i + 1];
    else if (flag == "--scenario") scenario = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  if (model.empty() || (scenario != "all" && scenario != "router" && scenario != "disagg")) {
    std::fprintf(stderr, "usage: cleave_serving_bench --model DIR [--build-dir DIR] "
                         "[--scenario router|disagg|all]\n");
    return 2;
  }
  int rc = 0;
  if (scenario != "disagg") rc |= cleave::RouterOverhead(model, build_dir);
  if (scenario != "router") rc |= cleave::DisaggVsColocated(model, build_dir);
  return rc;
}
