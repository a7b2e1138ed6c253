// Named model shapes for `cleave make-model`: tiny (tests), small (benchmarks) and seed
// (the model of the project's seed documents, ~6.58B parameters).
#ifndef CLEAVE_ENGINE_MODEL_PRESETS_H_
#define CLEAVE_ENGINE_MODEL_PRESETS_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/config.h"

namespace cleave {

// INVALID_ARGUMENT naming `name` and the known presets when it is not one of them.
absl::StatusOr<ModelConfig> PresetConfig(std::string_view name);
std::vector<std::string> PresetNames();

}  // namespace cleave

#endif  // CLEAVE_ENGINE_MODEL_PRESETS_H_
