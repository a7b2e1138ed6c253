// Strict YAML readers for the plan files: unknown keys and wrong types are errors that
// name the key path, so a typo never falls back to a default silently.
#ifndef CLEAVE_ENGINE_PLAN_YAML_UTIL_H_
#define CLEAVE_ENGINE_PLAN_YAML_UTIL_H_

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"

namespace cleave::plan::yaml {

absl::Status CheckKeys(const YAML::Node& map, const std::string& where,
                       const std::set<std::string>& allowed);
// Absent keys give nullopt; present ones must parse. `where` prefixes the key in errors.
absl::StatusOr<std::optional<double>> OptDouble(const YAML::Node& map, const std::string& where,
                                                const std::string& key);
absl::StatusOr<std::optional<int64_t>> OptInt(const YAML::Node& map, const std::string& where,
                                              const std::string& key);
absl::StatusOr<std::optional<std::string>> OptString(const YAML::Node& map,
                                                     const std::string& where,
                                                     const std::string& key);
absl::StatusOr<std::optional<bool>> OptBool(const YAML::Node& map, const std::string& where,
                                            const std::string& key);
// "a.b" or "b" when `where` is empty.
std::string Path(const std::string& where, const std::string& key);

}  // namespace cleave::plan::yaml

#endif  // CLEAVE_ENGINE_PLAN_YAML_UTIL_H_
