#include "tools/cleave/cluster_spec.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/util/status.h"

namespace cleave::launch {
namespace {

constexpr int kMaxReplicas = 64;

absl::Status Bad(const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(key, ": ", what));
}

absl::Status CheckKeys(const YAML::Node& map, const std::string& where,
                       const std::set<std::string>& allowed) {
  for (const auto& kv : map) {
    const std::string key = kv.first.as<std::string>();
    if (!allowed.contains(key)) {
      const std::string full = where.empty() ? key : absl::StrCat(where, ".", key);
      return Bad(full, absl::StrCat("unknown key (known: ", absl::StrJoin(allowed, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadString(const YAML::Node& node, const std::string& key) {
  if (!node.IsScalar()) return Bad(key, "expected a string");
  return node.Scalar();
}

absl::StatusOr<int64_t> ReadInt(const YAML::Node& node, const std::string& key) {
  int64_t v;
  if (!node.IsScalar() || !absl::SimpleAtoi(node.Scalar(), &v)) {
    return Bad(
        key, absl::StrCat("expected an integer, got '", node.IsScalar() ? node.Scalar() : "", "'"));
  }
  return v;
}

absl::StatusOr<bool> ReadBool(const YAML::Node& node, const std::string& key) {
  bool v;
  if (!node.IsScalar() || !YAML::convert<bool>::decode(node, v)) {
    return Bad(key, "expected true or false");
  }
  return v;
}

absl::StatusOr<std::vector<std::string>> ReadStrings(const YAML::Node& node,
                                                     const std::string& key) {
  if (!node.IsSequence()) return Bad(key, "expected a list of strings");
  std::vector<std::string> out;
  for (const YAML::Node& item : node) {
    if (!item.IsScalar()) return Bad(key, "expected a list of strings");
    out.push_back(item.Scalar());
  }
  return out;
}

absl::Status ReadWorker(const YAML::Node& node, const std::string& section, WorkerSpec* w) {
  if (!node.IsMap()) return Bad(section, "expected a mapping");
  RETURN_IF_ERROR(CheckKeys(node, section,
                            {"replicas", "kv_cache_mib", "max_num_seqs", "max_num_batched_tokens",
                             "max_prefill_chunk", "block_size", "ucx_tls", "flags"}));
  auto key = [&section](const char* k) { return absl::StrCat(section, ".", k); };
  if (node["replicas"]) {
    ASSIGN_OR_RETURN(int64_t replicas, ReadInt(node["replicas"], key("replicas")));
    if (replicas < 0 || replicas > kMaxReplicas) {
      return Bad(key("replicas"),
                 absl::StrCat("must be in [0, ", kMaxReplicas, "], got ", replicas));
    }
    w->replicas = static_cast<int>(replicas);
  } else {
    return Bad(key("replicas"), "missing");
  }
  const std::pair<const char*, std::optional<int64_t>*> ints[] = {
      {"kv_cache_mib", &w->kv_cache_mib},
      {"max_num_seqs", &w->max_num_seqs},
      {"max_num_batched_tokens", &w->max_num_batched_tokens},
      {"max_prefill_chunk", &w->max_prefill_chunk},
      {"block_size", &w->block_size},
  };
  for (const auto& [name, slot] : ints) {
    if (!node[name]) continue;
    ASSIGN_OR_RETURN(int64_t v, ReadInt(node[name], key(name)));
    *slot = v;
  }
  if (node["ucx_tls"]) {
    ASSIGN_OR_RETURN(std::string tls, ReadString(node["ucx_tls"], key("ucx_tls")));
    w->ucx_tls = tls;
  }
  if (node["flags"]) {
    ASSIGN_OR_RETURN(w->extra_flags, ReadStrings(node["flags"], key("flags")));
  }
  return absl::OkStatus();
}

absl::Status ReadRouter(const YAML::Node& node, ClusterSpec* spec) {
  if (!node.IsMap()) return Bad("router", "expected a mapping");
  RETURN_IF_ERROR(CheckKeys(node, "router",
                            {"port", "metrics_port", "policy", "heartbeat_timeout_ms", "flags"}));
  if (node["port"]) {
    ASSIGN_OR_RETURN(int64_t port, ReadInt(node["port"], "router.port"));
    if (port < 0 || port > 65535) return Bad("router.port", "must be in [0, 65535]");
    spec->router_port = static_cast<int>(port);
  }
  if (node["metrics_port"]) {
    ASSIGN_OR_RETURN(int64_t port, ReadInt(node["metrics_port"], "router.metrics_port"));
    if (port < 0 || port > 65535) return Bad("router.metrics_port", "must be in [0, 65535]");
    spec->router_metrics_port = static_cast<int>(port);
  }
  if (node["policy"]) {
    ASSIGN_OR_RETURN(std::string policy, ReadString(node["policy"], "router.policy"));
    spec->policy = policy;
  }
  if (node["heartbeat_timeout_ms"]) {
    ASSIGN_OR_RETURN(int64_t ms,
                     ReadInt(node["heartbeat_timeout_ms"], "router.heartbeat_timeout_ms"));
    spec->heartbeat_timeout_ms = ms;
  }
  if (node["flags"]) {
    ASSIGN_OR_RETURN(spec->router_extra_flags, ReadStrings(node["flags"], "router.flags"));
  }
  return absl::OkStatus();
}

absl::Status ValidateWorker(const WorkerSpec& w, const std::string& section) {
  if (w.replicas < 0 || w.replicas > kMaxReplicas) {
    return Bad(absl::StrCat(section, ".replicas"),
               absl::StrCat("must be in [0, ", kMaxReplicas, "], got ", w.replicas));
  }
  const std::pair<const char*, const std::optional<int64_t>*> positive[] = {
      {"kv_cache_mib", &w.kv_cache_mib},
      {"max_num_seqs", &w.max_num_seqs},
      {"max_num_batched_tokens", &w.max_num_batched_tokens},
      {"max_prefill_chunk", &w.max_prefill_chunk},
      {"block_size", &w.block_size},
  };
  for (const auto& [name, value] : positive) {
    if (value->has_value() && (**value <= 0 || **value > (int64_t{1} << 31) - 1)) {
      return Bad(absl::StrCat(section, ".", name),
                 absl::StrCat("must be a positive 32-bit integer, got ", **value));
    }
  }
  if (w.block_size.has_value() && *w.block_size > 1024) {
    return Bad(absl::StrCat(section, ".block_size"), "must be in [1, 1024]");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ClusterSpec::Validate() const {
  if (model.empty()) return Bad("model", "missing");
  if (host.empty()) return Bad("host", "must not be empty");
  if (router_port < 0 || router_port > 65535) return Bad("router.port", "must be in [0, 65535]");
  if (router_metrics_port < 0 || router_metrics_port > 65535) {
    return Bad("router.metrics_port", "must be in [0, 65535]");
  }
  if (policy.has_value() && *policy != "round_robin" && *policy != "least_load") {
    return Bad("router.policy",
               absl::StrCat("must be round_robin or least_load, got '", *policy, "'"));
  }
  if (heartbeat_timeout_ms.has_value() && *heartbeat_timeout_ms <= 0) {
    return Bad("router.heartbeat_timeout_ms", "must be positive");
  }
  RETURN_IF_ERROR(ValidateWorker(prefill, "prefill"));
  RETURN_IF_ERROR(ValidateWorker(decode, "decode"));
  RETURN_IF_ERROR(ValidateWorker(colocated, "colocated"));
  return absl::OkStatus();
}

absl::StatusOr<ClusterSpec> LoadClusterSpec(const std::string& path, const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read the file"));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
  auto parse = [&]() -> absl::StatusOr<ClusterSpec> {
    if (!root.IsMap()) return Bad("(top level)", "expected a mapping");
    RETURN_IF_ERROR(CheckKeys(
        root, "", {"model", "host", "metrics", "router", "prefill", "decode", "colocated"}));
    ClusterSpec spec;
    if (!root["model"]) return Bad("model", "missing");
    ASSIGN_OR_RETURN(spec.model, ReadString(root["model"], "model"));
    if (root["host"]) {
      ASSIGN_OR_RETURN(spec.host, ReadString(root["host"], "host"));
    }
    if (root["metrics"]) {
      ASSIGN_OR_RETURN(spec.metrics, ReadBool(root["metrics"], "metrics"));
    }
    if (root["router"]) RETURN_IF_ERROR(ReadRouter(root["router"], &spec));
    if (root["prefill"]) RETURN_IF_ERROR(ReadWorker(root["prefill"], "prefill", &spec.prefill));
    if (root["decode"]) RETURN_IF_ERROR(ReadWorker(root["decode"], "decode", &spec.decode));
    if (root["colocated"]) {
      RETURN_IF_ERROR(ReadWorker(root["colocated"], "colocated", &spec.colocated));
    }
    RETURN_IF_ERROR(spec.Validate());
    // Tests build half-empty clusters on purpose; a spec file that cannot serve is a mistake.
    if (spec.expected_prefill_workers() == 0) {
      return Bad("prefill.replicas", "no worker can prefill (need prefill or colocated replicas)");
    }
    if (spec.expected_decode_workers() == 0) {
      return Bad("decode.replicas", "no worker can decode (need decode or colocated replicas)");
    }

    std::filesystem::path model(spec.model);
    if (model.is_relative()) model = std::filesystem::path(base_dir) / model;
    std::error_code ec;
    model = std::filesystem::weakly_canonical(model, ec);
    if (ec || !std::filesystem::exists(model / "config.json")) {
      return Bad("model", absl::StrCat("'", spec.model, "' (", model.string(),
                                       ") is not a checkpoint directory; write one with "
                                       "`cleave make-model --preset tiny --out DIR`"));
    }
    spec.model = model.string();
    return spec;
  };
  try {
    auto spec = parse();
    if (!spec.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", spec.status().message()));
    }
    return spec;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
}

}  // namespace cleave::launch
