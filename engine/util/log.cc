#include "engine/util/log.h"

namespace cleave {
void SetLogLevel(const char* level) {
  spdlog::set_level(spdlog::level::from_str(level));
}
}  // namespace cleave
