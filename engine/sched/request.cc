#include "engine/sched/request.h"

namespace cleave {

std::string_view FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "none";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kStopSequence: return "stop_sequence";
    case FinishReason::kAbort: return "abort";
  }
  return "none";
}

}  // namespace cleave
