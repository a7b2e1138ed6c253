// Which workers serve a request. round_robin spreads requests evenly; least_load sends prefill
// to the worker with the fewest prompt tokens queued and decode to the one with the fewest
// active streams (the router's own count, fresher than heartbeats), then most free KV blocks.
// Prefix-aware and SLO-aware policies implement the same interface.
#ifndef CLEAVE_SERVICES_ROUTER_ROUTING_POLICY_H_
#define CLEAVE_SERVICES_ROUTER_ROUTING_POLICY_H_

#include <atomic>
#include <memory>
#include <span>
#include <string>

#include "absl/status/statusor.h"
#include "services/router/worker_registry.h"

namespace cleave {

struct RouteRequest {
  int prompt_tokens = 0;
};

class RoutingPolicy {
 public:
  virtual ~RoutingPolicy() = default;
  // candidates is never empty. Returns an index into it.
  virtual size_t PickPrefill(std::span<const WorkerView> candidates, const RouteRequest& r) = 0;
  virtual size_t PickDecode(std::span<const WorkerView> candidates, const RouteRequest& r) = 0;
};

// "round_robin" or "least_load"; INVALID_ARGUMENT otherwise.
absl::StatusOr<std::unique_ptr<RoutingPolicy>> MakeRoutingPolicy(const std::string& name);

}  // namespace cleave

#endif  // CLEAVE_SERVICES_ROUTER_ROUTING_POLICY_H_
