// Engine benchmark on CPU: cleave's prefill and decode throughput side by side with
// the PyTorch eager reference (bench/torch_bench.py) on the same checkpoint, in the
// same run, with the ratio. Greedy decoding on both sides.
//
//   cleave_engine_bench --model DIR [--batches 1,16,64] [--prompt-len 32]
//                       [--decode-steps 32] [--repeats 3] [--no-torch]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "engine/core/engine_core.h"
#include "engine/model/checkpoint.h"
#include "engine/runtime/backend.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/util/log.h"
#include "nlohmann/json.hpp"

namespace cleave {
namespace {

struct Throughput {
  double prefill_tok_s = 0, decode_tok_s = 0;
};

using Clock = std::chrono::steady_clock;

// Prefill: all B prompts in one step. Decode: `steps` steps of B sequences.
Throughput RunCleave(const std::string& dir, Backend* backend, int batch, int prompt_len,
                     int steps) {
  auto ckpt = Checkpoint::Open(dir);
  auto model = MixtralModel::Load(**ckpt, backend);
  auto tokenizer = LoadTokenizer(dir);
  EngineConfig config;
  config.scheduler.max_num_seqs = batch;
  config.scheduler.max_num_batched_tokens = batch * prompt_len;
  config.enable_prefix_caching = false;
  config.kv_cache_mib = 1024;
  auto engine = EngineCore::Create(std::move(*model), std::move(*tokenizer), config);
  if (!engine.ok()) {
    std::fprintf(stderr, "engine: %s\n", engine.status().ToString().c_str());
    std::exit(1);
  }
  std::mt19937 rng(batch);
  std::uniform_int_distribution<int> tok(3, (*engine)->model_config().vocab_size - 1);
  for (int b = 0; b < batch; ++b) {
    GenerateRequest r;
    r.prompt_ids.resize(prompt_len);
    for (int& t : r.prompt_ids) t = tok(rng);
    r.params.temperature = 0;
    r.params.max_tokens = steps + 1;
    r.params.ignore_eos = true;
    (void)(*engine)->AddRequest(std::move(r));
  }
  Throughput t;
  auto start = Clock::now();
  (*engine)->Step();  // prefill of every prompt, first token sampled
  t.prefill_tok_s = batch * prompt_len / std::chrono::duration<double>(Clock::now() - start).count();
  start = Clock::now();
  for (int s = 0; s < steps; ++s) (*engine)->Step();
  t.decode_tok_s = batch * steps / std::chrono::duration<double>(Clock::now() - start).count();
  while ((*engine)->HasWork()) (*engine)->Step();
  return t;
}

bool RunTorch(const std::string& dir, int batch, int prompt_len, int steps, Throughput* out) {
  const char* src = std::getenv("CLEAVE_SOURCE_DIR");
  const std::string cmd = std::string("python3 ") + (src ? src : ".") +
                          "/bench/torch_bench.py --model " + dir + " --batch " +
                          std::to_string(batch) + " --prompt-len " + std::to_string(prompt_len) +
                          " --decode-steps " + std::to_string(steps);
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return false;
  std::string text;
  char buf[4096];
  while (fgets(buf, sizeof buf, pipe)) text += buf;
  if (pclose(pipe) != 0) return false;
  auto pos = text.rfind('{');
  if (pos == std::string::npos) return false;
  auto j = nlohmann::json::parse(text.substr(pos), nullptr, false);
  if (j.is_discarded()) return false;
  out->prefill_tok_s = j.value("prefill_tok_s", 0.0);
  out->decode_tok_s = j.value("decode_tok_s", 0.0);
  return true;
}

int Main(int argc, char** argv) {
  std::string model;
  std::vector<int> batches = {1, 16, 64};
  int prompt_len = 32, steps = 32, repeats = 3;
  bool torch = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model") {
      model = next();
    } else if (a == "--batches") {
      batches.clear();
      for (auto piece : absl::StrSplit(next(), ',')) {
        int b;
        if (!absl::SimpleAtoi(piece, &b) || b <= 0) {
          std::fprintf(stderr, "--batches: bad value\n");
          return 2;
        }
        batches.push_back(b);
      }
    } else if (a == "--prompt-len") {
      prompt_len = std::atoi(next().c_str());
    } else if (a == "--decode-steps") {
      steps = std::atoi(next().c_str());
    } else if (a == "--repeats") {
      repeats = std::atoi(next().c_str());
    } else if (a == "--no-torch") {
      torch = false;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  if (model.empty() || prompt_len <= 0 || steps <= 0 || repeats <= 0) {
    std::fprintf(stderr, "usage: cleave_engine_bench --model DIR [--batches 1,16,64] "
                         "[--prompt-len N] [--decode-steps N] [--repeats N] [--no-torch]\n");
    return 2;
  }
  SetLogLevel("warn");
  auto backend = MakeCpuBackend();
  std::printf("model=%s prompt_len=%d decode_steps=%d repeats=%d (best of repeats)\n",
              model.c_str(), prompt_len, steps, repeats);
  std::printf("%6s | %14s %14s %7s | %14s %14s %7s\n", "batch", "cleave pf t/s", "torch pf t/s",
              "ratio", "cleave dec t/s", "torch dec t/s", "ratio");
  for (int batch : batches) {
    Throughput best_c, best_t;
    bool torch_ok = torch;
    // Alternate the two so machine noise hits both alike; keep each side's best.
    for (int r = 0; r < repeats; ++r) {
      Throughput c = RunCleave(model, backend.get(), batch, prompt_len, steps);
      best_c.prefill_tok_s = std::max(best_c.prefill_tok_s, c.prefill_tok_s);
      best_c.decode_tok_s = std::max(best_c.decode_tok_s, c.decode_tok_s);
      Throughput t;
      if (torch_ok && RunTorch(model, batch, prompt_len, steps, &t)) {
        best_t.prefill_tok_s = std::max(best_t.prefill_tok_s, t.prefill_tok_s);
        best_t.decode_tok_s = std::max(best_t.decode_tok_s, t.decode_tok_s);
      } else if (torch_ok) {
        std::fprintf(stderr, "torch_bench.py failed; reporting cleave alone\n");
        torch_ok = false;
      }
    }
    auto ratio = [](double a, double b) { return b > 0 ? a / b : 0.0; };
    std::printf("%6d | %14.1f %14.1f %6.2fx | %14.1f %14.1f %6.2fx\n", batch,
                best_c.prefill_tok_s, best_t.prefill_tok_s,
                ratio(best_c.prefill_tok_s, best_t.prefill_tok_s), best_c.decode_tok_s,
                best_t.decode_tok_s, ratio(best_c.decode_tok_s, best_t.decode_tok_s));
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace cleave

int main(int argc, char** argv) { return cleave::Main(argc, argv); }
