// A small, strict command-line parser for the `cleave` subcommands: --name value,
// --name=value, and bare --switch. Anything unknown or malformed is a usage error
// (exit code 2), never a guess.
#ifndef CLEAVE_TOOLS_CLEAVE_ARGS_H_
#define CLEAVE_TOOLS_CLEAVE_ARGS_H_

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/sample/sampling_params.h"

namespace cleave::cli {

struct FlagSpec {
  std::string name;   // without the leading dashes
  bool is_switch = false;
  bool repeated = false;
  std::string help;
};

class Args {
 public:
  static absl::StatusOr<Args> Parse(const std::vector<FlagSpec>& specs, int argc, char** argv);

  bool Has(const std::string& name) const { return values_.contains(name); }
  std::vector<std::string> All(const std::string& name) const;
  absl::StatusOr<std::string> Required(const std::string& name) const;
  std::string String(const std::string& name, const std::string& fallback) const;
  absl::StatusOr<int64_t> Int(const std::string& name, int64_t fallback) const;
  absl::StatusOr<double> Double(const std::string& name, double fallback) const;
  absl::StatusOr<std::optional<uint64_t>> OptionalU64(const std::string& name) const;

 private:
  std::map<std::string, std::vector<std::string>> values_;
};

std::string Usage(const std::string& command, const std::vector<FlagSpec>& specs);

// The sampling flags that `run` and `generate` share: --max-tokens, --temperature, --top-k,
// --top-p, --min-p, the three penalties, --seed, --stop, --stop-token-id, --ignore-eos and
// --logprobs.
const std::vector<FlagSpec>& SamplingFlagSpecs();

// Reads them (defaults: max_tokens 64, the rest off) without validating the ranges.
absl::StatusOr<SamplingParams> ParseSamplingFlags(const Args& args);

// `parts` concatenated, for building a command's flag list from shared pieces.
std::vector<FlagSpec> JoinFlagSpecs(std::initializer_list<std::vector<FlagSpec>> parts);

}  // namespace cleave::cli

#endif  // CLEAVE_TOOLS_CLEAVE_ARGS_H_
