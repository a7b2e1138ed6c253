// Error-propagation helpers for absl::Status / absl::StatusOr.
#ifndef CLEAVE_ENGINE_UTIL_STATUS_H_
#define CLEAVE_ENGINE_UTIL_STATUS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CLEAVE_CONCAT_INNER_(a, b) a##b
#define CLEAVE_CONCAT_(a, b) CLEAVE_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` yields a non-OK status.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status _cleave_status = (expr);            \
    if (!_cleave_status.ok()) return _cleave_status;   \
  } while (0)

// ASSIGN_OR_RETURN(auto x, MakeX()) declares/assigns `x` or returns the error.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  CLEAVE_ASSIGN_OR_RETURN_IMPL_(CLEAVE_CONCAT_(_cleave_statusor_, __LINE__), lhs, rexpr)

#define CLEAVE_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                  \
  if (!statusor.ok()) return std::move(statusor).status();  \
  lhs = std::move(statusor).value()

#endif  // CLEAVE_ENGINE_UTIL_STATUS_H_
