// Flags every service binary takes (defined once in service_flags.cc).
#ifndef CLEAVE_SERVICES_COMMON_SERVICE_FLAGS_H_
#define CLEAVE_SERVICES_COMMON_SERVICE_FLAGS_H_

#include <string>

#include "absl/flags/declare.h"

ABSL_DECLARE_FLAG(std::string, host);
ABSL_DECLARE_FLAG(int, port);
ABSL_DECLARE_FLAG(int, metrics_port);
ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(std::string, log_level);

namespace cleave {
// Checks the flags above; a message naming the flag on error, empty when they are fine.
std::string CheckServiceFlags();
}  // namespace cleave

#endif  // CLEAVE_SERVICES_COMMON_SERVICE_FLAGS_H_
