// cleave make-model --preset tiny|small|seed --out DIR [--seed N] [--dtype bf16|fp16|fp32]
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/model/checkpoint_writer.h"
#include "engine/model/presets.h"
#include "tools/cleave/args.h"
#include "tools/cleave/commands.h"

namespace cleave::cli {
namespace {

const std::vector<FlagSpec>& Specs() {
  static const std::vector<FlagSpec> specs = {
      {"preset", false, false, "tiny (a few MB, for tests), small (benchmarks) or seed (6.58B, GPUs)"},
      {"out", false, false, "directory to write (created; must not hold a checkpoint already)"},
      {"seed", false, false, "random seed for the weights (default 0)"},
      {"dtype", false, false, "bf16, fp16 or fp32 (default: the preset's, bf16)"},
      {"max-shard-mib", false, false, "split into shards above this size (default 4096)"},
      {"help", true, false, "show this help"},
  };
  return specs;
}

absl::Status Run(const Args& args) {
  std::string preset_name, out;
  {
    auto p = args.Required("preset");
    if (!p.ok()) return p.status();
    preset_name = *p;
    auto o = args.Required("out");
    if (!o.ok()) return o.status();
    out = *o;
  }
  auto config = PresetConfig(preset_name);
  if (!config.ok()) return config.status();
  const std::string dtype = args.String("dtype", "");
  if (dtype == "bf16") {
    config->torch_dtype = DType::kBF16;
  } else if (dtype == "fp16") {
    config->torch_dtype = DType::kF16;
  } else if (dtype == "fp32") {
    config->torch_dtype = DType::kF32;
  } else if (!dtype.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("--dtype: '", dtype, "' (want bf16, fp16 or fp32)"));
  }
  auto seed = args.OptionalU64("seed");
  if (!seed.ok()) return seed.status();
  auto shard_mib = args.Int("max-shard-mib", 4096);
  if (!shard_mib.ok()) return shard_mib.status();
  if (*shard_mib <= 0) return absl::InvalidArgumentError("--max-shard-mib must be positive");
  return WriteRandomCheckpoint(*config, out, seed->value_or(0), *shard_mib << 20);
}

}  // namespace

int MakeModelCommand(int argc, char** argv) {
  auto args = Args::Parse(Specs(), argc, argv);
  if (!args.ok()) {
    std::fprintf(stderr, "cleave make-model: %s\n%s", std::string(args.status().message()).c_str(),
                 Usage("make-model", Specs()).c_str());
    return kExitUsage;
  }
  if (args->Has("help")) {
    std::fputs(Usage("make-model", Specs()).c_str(), stdout);
    return 0;
  }
  absl::Status st = Run(*args);
  if (!st.ok()) {
    std::fprintf(stderr, "cleave make-model: %s\n", std::string(st.message()).c_str());
    return st.code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
  }
  std::fprintf(stderr, "cleave make-model: wrote %s\n", args->String("out", "").c_str());
  return 0;
}

}  // namespace cleave::cli
