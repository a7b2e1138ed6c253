// The one logging header: spdlog behind a few macros, so the rest of the code
// does not depend on spdlog's API directly.
#ifndef CLEAVE_ENGINE_UTIL_LOG_H_
#define CLEAVE_ENGINE_UTIL_LOG_H_

#include <spdlog/spdlog.h>

#define LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)

namespace cleave {
// Sets the global level from a name ("debug", "info", "warn", "error", "off").
void SetLogLevel(const char* level);
}  // namespace cleave

#endif  // CLEAVE_ENGINE_UTIL_LOG_H_
