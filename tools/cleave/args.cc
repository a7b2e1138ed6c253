#include "tools/cleave/args.h"

#include <cerrno>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

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

}  // namespace cleave::cli
