// The load generator behind `cleave generate --requests M --concurrency N`: N client
// threads share one channel and pull request indices until M have been sent. Latencies
// are measured here, on the client: TTFT from sending to the first chunk with tokens,
// ITL between consecutive chunks with tokens.
#include <grpcpp/create_channel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "cleave/v1/generation.grpc.pb.h"
#include "tools/cleave/generate.h"

namespace cleave::cli {
namespace {

namespace pb = ::cleave::v1;
using Clock = std::chrono::steady_clock;

struct Outcome {
  bool ok = false;
  std::string error;  // gRPC code name
  double ttft_ms = 0;
  std::vector<double> itl_ms;
  int completion_tokens = 0;
  std::string prefill_worker, decode_worker;
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

Outcome SendOne(pb::Generation::Stub& stub, pb::GenerateRequest request, absl::Duration deadline) {
  Outcome out;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  const Clock::time_point start = Clock::now();
  std::optional<Clock::time_point> last_tokens;
  auto reader = stub.Generate(&context, request);
  pb::GenerateResponse chunk;
  bool finished = false;
  while (reader->Read(&chunk)) {
    const Clock::time_point now = Clock::now();
    if (chunk.token_ids_size() > 0) {
      if (!last_tokens.has_value()) {
        out.ttft_ms = Ms(now - start);
      } else {
        out.itl_ms.push_back(Ms(now - *last_tokens));
      }
      last_tokens = now;
    }
    if (chunk.finish_reason() != pb::FINISH_REASON_UNSPECIFIED) {
      finished = true;
      out.completion_tokens = chunk.usage().completion_tokens();
      out.prefill_worker = chunk.timing().prefill_worker();
      out.decode_worker = chunk.timing().decode_worker();
    }
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) {
    out.error = absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
  } else if (!finished) {
    out.error = "NO_FINAL_CHUNK";
  } else {
    out.ok = true;
  }
  return out;
}

// Linear interpolation between closest ranks; 0 for no samples.
double Percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = q * (v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

nlohmann::json Percentiles(std::vector<double>& v) {
  return {{"p50", Percentile(v, 0.5)}, {"p90", Percentile(v, 0.9)}, {"p99", Percentile(v, 0.99)}};
}

constexpr const char* kCorpus[] = {
    "The experts said the mixture would route each token to the two best specialists.",
    "Once upon a time, a small router sent every question to the least busy worker it knew.",
    "Summarize the following report about cache reuse across long conversations in one line.",
    "Why do decode workers prefer small batches of many sequences over one long prompt?",
    "Write a short poem about key-value blocks travelling between two machines at night.",
    "List three reasons a prefill stage benefits from wide tensor and expert parallelism.",
    "In the beginning there was a prompt, and the prompt was split into chunks of tokens.",
    "Translate to French: the scheduler admits requests while free memory blocks remain.",
};

}  // namespace

std::vector<std::string> BuiltinPrompts(int count, int min_chars, int max_chars) {
  constexpr int kSentences = sizeof(kCorpus) / sizeof(kCorpus[0]);
  std::mt19937_64 rng(7);
  std::vector<std::string> prompts;
  for (int i = 0; i < count; ++i) {
    std::string text = kCorpus[i % kSentences];
    if (max_chars > 0) {
      const int target = std::uniform_int_distribution<int>(min_chars, max_chars)(rng);
      for (int j = i + 1; static_cast<int>(text.size()) < target; ++j) {
        absl::StrAppend(&text, " ", kCorpus[j % kSentences]);
      }
      text.resize(target);  // the corpus is ASCII, so no character is cut in half
    }
    prompts.push_back(std::move(text));
  }
  return prompts;
}

int RunLoad(const LoadOptions& options) {
  auto stub = pb::Generation::NewStub(
      grpc::CreateChannel(options.router, grpc::InsecureChannelCredentials()));
  std::atomic<int> next{0};
  absl::Mutex mu;
  std::vector<Outcome> outcomes;
  outcomes.reserve(options.requests);

  const Clock::time_point start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < std::min(options.concurrency, options.requests); ++t) {
    threads.emplace_back([&]() {
      for (int i = next++; i < options.requests; i = next++) {
        pb::GenerateRequest request = options.base;
        request.set_text(options.prompts[i % options.prompts.size()]);
        if (!options.base.request_id().empty()) {
          request.set_request_id(absl::StrCat(options.base.request_id(), "-", i));
        }
        Outcome out = SendOne(*stub, std::move(request), options.rpc_deadline);
        absl::MutexLock lock(&mu);
        outcomes.push_back(std::move(out));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  int ok = 0;
  int64_t tokens = 0;
  std::vector<double> ttft, itl;
  std::map<std::pair<std::string, std::string>, int> pairs;
  std::map<std::string, int> errors;
  for (const Outcome& o : outcomes) {
    if (!o.ok) {
      ++errors[o.error];
      continue;
    }
    ++ok;
    tokens += o.completion_tokens;
    ttft.push_back(o.ttft_ms);
    itl.insert(itl.end(), o.itl_ms.begin(), o.itl_ms.end());
    ++pairs[{o.prefill_worker, o.decode_worker}];
  }
  const int failed = static_cast<int>(outcomes.size()) - ok;

  nlohmann::json j;
  j["requests"] = options.requests;
  j["concurrency"] = options.concurrency;
  j["ok"] = ok;
  j["failed"] = failed;
  j["duration_s"] = seconds;
  j["output_tokens"] = tokens;
  j["output_tokens_per_s"] = seconds > 0 ? tokens / seconds : 0.0;
  j["requests_per_s"] = seconds > 0 ? ok / seconds : 0.0;
  j["ttft_ms"] = Percentiles(ttft);
  j["itl_ms"] = Percentiles(itl);
  j["workers"] = nlohmann::json::array();
  for (const auto& [pair, n] : pairs) {
    j["workers"].push_back({{"prefill", pair.first}, {"decode", pair.second}, {"requests", n}});
  }
  j["errors"] = nlohmann::json::object();
  for (const auto& [code, n] : errors) j["errors"][code] = n;

  if (options.json) {
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("requests: %d ok, %d failed (concurrency %d, %.2f s)\n", ok, failed,
                options.concurrency, seconds);
    std::printf("throughput: %.1f output tokens/s, %.2f requests/s\n",
                j["output_tokens_per_s"].get<double>(), j["requests_per_s"].get<double>());
    for (const char* name : {"ttft_ms", "itl_ms"}) {
      std::printf("%s: p50=%.1f p90=%.1f p99=%.1f\n", name, j[name]["p50"].get<double>(),
                  j[name]["p90"].get<double>(), j[name]["p99"].get<double>());
    }
    for (const auto& [pair, n] : pairs) {
      std::printf("served by prefill=%s decode=%s: %d\n", pair.first.c_str(), pair.second.c_str(),
                  n);
    }
    for (const auto& [code, n] : errors) std::printf("errors %s: %d\n", code.c_str(), n);
  }
  std::fflush(stdout);
  return failed == 0 ? 0 : 1;
}

}  // namespace cleave::cli
