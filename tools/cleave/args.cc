#include "tools/cleave/args.h"

#include <cerrno>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "engine/util/status.h"

namespace cleave::cli {

absl::StatusOr<Args> Args::Parse(const std::vector<FlagSpec>& specs, int argc, char** argv) {
  Args args;
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      return absl::InvalidArgumentError(absl::StrCat("unexpected argument '", arg, "'"));
    }
    std::string name = arg.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const FlagSpec* spec = nullptr;
    for (const FlagSpec& s : specs) {
      if (s.name == name) spec = &s;
    }
    if (spec == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    if (spec->is_switch) {
      if (has_value) return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      value = "true";
    } else if (!has_value) {
      if (i + 1 >= argc) return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      value = argv[++i];
    }
    auto& slot = args.values_[name];
    if (!slot.empty() && !spec->repeated) {
      return absl::InvalidArgumentError(absl::StrCat("--", name, " given more than once"));
    }
    slot.push_back(value);
  }
  return args;
}

std::vector<std::string> Args::All(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

absl::StatusOr<std::string> Args::Required(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return absl::InvalidArgumentError(absl::StrCat("--", name, " is required"));
  return it->second.front();
}

std::string Args::String(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.front();
}

absl::StatusOr<int64_t> Args::Int(const std::string& name, int64_t fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  int64_t v;
  if (!absl::SimpleAtoi(it->second.front(), &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": '", it->second.front(), "' is not an integer"));
  }
  return v;
}

absl::StatusOr<double> Args::Double(const std::string& name, double fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  double v;
  if (!absl::SimpleAtod(it->second.front(), &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": '", it->second.front(), "' is not a number"));
  }
  return v;
}

absl::StatusOr<std::optional<uint64_t>> Args::OptionalU64(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::optional<uint64_t>();
  uint64_t v;
  if (!absl::SimpleAtoi(it->second.front(), &v)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", name, ": '", it->second.front(), "' is not a non-negative integer"));
  }
  return std::optional<uint64_t>(v);
}

std::string Usage(const std::string& command, const std::vector<FlagSpec>& specs) {
  std::string out = absl::StrCat("usage: cleave ", command, " [flags]\n");
  for (const FlagSpec& s : specs) {
    absl::StrAppend(&out, "  --", s.name, s.is_switch ? "" : " VALUE", s.repeated ? " (repeatable)" : "",
                    "\n      ", s.help, "\n");
  }
  return out;
}

const std::vector<FlagSpec>& SamplingFlagSpecs() {
  static const std::vector<FlagSpec> specs = {
      {"max-tokens", false, false, "tokens to generate at most (default 64)"},
      {"temperature", false, false, "0 = greedy (default 1.0)"},
      {"top-k", false, false, "keep the k most likely tokens (0 = off)"},
      {"top-p", false, false, "nucleus sampling mass (1 = off)"},
      {"min-p", false, false, "drop tokens below min-p x the top probability (0 = off)"},
      {"repetition-penalty", false, false, "multiplicative penalty on seen tokens (1 = off)"},
      {"presence-penalty", false, false, "additive penalty on generated tokens (0 = off)"},
      {"frequency-penalty", false, false, "additive penalty per occurrence (0 = off)"},
      {"seed", false, false, "sampling seed (reproducible output)"},
      {"stop", false, true, "stop string (not printed)"},
      {"stop-token-id", false, true, "token id that ends generation"},
      {"ignore-eos", true, false, "keep generating past the end-of-sequence token"},
      {"logprobs", false, false, "print the top-N log-probabilities of each token to stderr"},
  };
  return specs;
}

absl::StatusOr<SamplingParams> ParseSamplingFlags(const Args& args) {
  SamplingParams p;
  ASSIGN_OR_RETURN(int64_t max_tokens, args.Int("max-tokens", 64));
  p.max_tokens = static_cast<int>(max_tokens);
  ASSIGN_OR_RETURN(double temperature, args.Double("temperature", 1.0));
  p.temperature = static_cast<float>(temperature);
  ASSIGN_OR_RETURN(int64_t top_k, args.Int("top-k", 0));
  p.top_k = static_cast<int>(top_k);
  ASSIGN_OR_RETURN(double top_p, args.Double("top-p", 1.0));
  p.top_p = static_cast<float>(top_p);
  ASSIGN_OR_RETURN(double min_p, args.Double("min-p", 0.0));
  p.min_p = static_cast<float>(min_p);
  ASSIGN_OR_RETURN(double rep, args.Double("repetition-penalty", 1.0));
  p.repetition_penalty = static_cast<float>(rep);
  ASSIGN_OR_RETURN(double presence, args.Double("presence-penalty", 0.0));
  p.presence_penalty = static_cast<float>(presence);
  ASSIGN_OR_RETURN(double frequency, args.Double("frequency-penalty", 0.0));
  p.frequency_penalty = static_cast<float>(frequency);
  ASSIGN_OR_RETURN(p.seed, args.OptionalU64("seed"));
  p.stop = args.All("stop");
  for (const std::string& s : args.All("stop-token-id")) {
    int id;
    if (!absl::SimpleAtoi(s, &id)) {
      return absl::InvalidArgumentError(absl::StrCat("--stop-token-id: '", s, "' is not an integer"));
    }
    p.stop_token_ids.push_back(id);
  }
  p.ignore_eos = args.Has("ignore-eos");
  ASSIGN_OR_RETURN(int64_t logprobs, args.Int("logprobs", -1));
  p.logprobs = static_cast<int>(logprobs);
  return p;
}

std::vector<FlagSpec> JoinFlagSpecs(std::initializer_list<std::vector<FlagSpec>> parts) {
  std::vector<FlagSpec> out;
  for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

}  // namespace cleave::cli
