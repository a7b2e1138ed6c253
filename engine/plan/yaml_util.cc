#include "engine/plan/yaml_util.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace cleave::plan::yaml {

std::string Path(const std::string& where, const std::string& key) {
  return where.empty() ? key : absl::StrCat(where, ".", key);
}

absl::Status CheckKeys(const YAML::Node& map, const std::string& where,
                       const std::set<std::string>& allowed) {
  if (!map.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(where.empty() ? "file" : where,
                                                   ": must be a mapping"));
  }
  for (const auto& kv : map) {
    const std::string key = kv.first.as<std::string>();
    if (!allowed.contains(key)) {
      return absl::InvalidArgumentError(absl::StrCat(Path(where, key), ": unknown key (known: ",
                                                     absl::StrJoin(allowed, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<double>> OptDouble(const YAML::Node& map, const std::string& where,
                                                const std::string& key) {
  const YAML::Node n = map[key];
  if (!n) return std::optional<double>();
  double v = 0;
  // absl parses "30e9", which YAML's own double conversion also accepts; be explicit.
  if (!n.IsScalar() || !absl::SimpleAtod(n.Scalar(), &v)) {
    return absl::InvalidArgumentError(absl::StrCat(Path(where, key), ": want a number"));
  }
  return std::optional<double>(v);
}

absl::StatusOr<std::optional<int64_t>> OptInt(const YAML::Node& map, const std::string& where,
                                              const std::string& key) {
  const YAML::Node n = map[key];
  if (!n) return std::optional<int64_t>();
  int64_t v = 0;
  if (!n.IsScalar() || !absl::SimpleAtoi(n.Scalar(), &v)) {
    return absl::InvalidArgumentError(absl::StrCat(Path(where, key), ": want an integer"));
  }
  return std::optional<int64_t>(v);
}

absl::StatusOr<std::optional<std::string>> OptString(const YAML::Node& map,
                                                     const std::string& where,
                                                     const std::string& key) {
  const YAML::Node n = map[key];
  if (!n) return std::optional<std::string>();
  if (!n.IsScalar()) {
    return absl::InvalidArgumentError(absl::StrCat(Path(where, key), ": want a string"));
  }
  return std::optional<std::string>(n.Scalar());
}

absl::StatusOr<std::optional<bool>> OptBool(const YAML::Node& map, const std::string& where,
                                            const std::string& key) {
  const YAML::Node n = map[key];
  if (!n) return std::optional<bool>();
  bool v = false;
  if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v)) {
    return absl::InvalidArgumentError(absl::StrCat(Path(where, key), ": want true or false"));
  }
  return std::optional<bool>(v);
}

}  // namespace cleave::plan::yaml
