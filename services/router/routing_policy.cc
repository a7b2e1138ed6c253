#include "services/router/routing_policy.h"

#include <tuple>

#include "absl/strings/str_cat.h"

namespace cleave {
namespace {

class RoundRobin final : public RoutingPolicy {
 public:
  size_t PickPrefill(std::span<const WorkerView> c, const RouteRequest&) override {
    return prefill_next_++ % c.size();
  }
  size_t PickDecode(std::span<const WorkerView> c, const RouteRequest&) override {
    return decode_next_++ % c.size();
  }

 private:
  std::atomic<size_t> prefill_next_{0}, decode_next_{0};
};

class LeastLoad final : public RoutingPolicy {
 public:
  size_t PickPrefill(std::span<const WorkerView> c, const RouteRequest&) override {
    return ArgMin(c, [](const WorkerView& w) {
      return std::make_tuple(w.load.queued_prefill_tokens() + w.in_flight_prompt_tokens,
                             int64_t{w.in_flight}, int64_t{0});
    });
  }
  size_t PickDecode(std::span<const WorkerView> c, const RouteRequest&) override {
    return ArgMin(c, [](const WorkerView& w) {
      return std::make_tuple(int64_t{w.in_flight}, int64_t{-w.load.free_kv_blocks()},
                             int64_t{w.load.running_requests()});
    });
  }

 private:
  // Ties go round robin, so equal workers share the load.
  template <typename Key>
  size_t ArgMin(std::span<const WorkerView> c, Key key) {
    const size_t start = tie_++ % c.size();
    size_t best = start;
    for (size_t k = 1; k < c.size(); ++k) {
      const size_t i = (start + k) % c.size();
      if (key(c[i]) < key(c[best])) best = i;
    }
    return best;
  }
  std::atomic<size_t> tie_{0};
};

}  // namespace

absl::StatusOr<std::unique_ptr<RoutingPolicy>> MakeRoutingPolicy(const std::string& name) {
  if (name == "round_robin") return std::make_unique<RoundRobin>();
  if (name == "least_load") return std::make_unique<LeastLoad>();
  return absl::InvalidArgumentError(
      absl::StrCat("policy: '", name, "' is not one of round_robin, least_load"));
}

}  // namespace cleave
