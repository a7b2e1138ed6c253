#include "tools/cleave/local_cluster.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "cleave/v1/generation.grpc.pb.h"
#include "engine/util/status.h"

namespace cleave::launch {
namespace {

// grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING. Debian ships no generated
// health stubs, and compiling our own copy of health.proto would clash with any other
// copy linked into the same binary, so the probe speaks the (two-field) wire format.
constexpr uint64_t kHealthServing = 1;
constexpr absl::Duration kPollInterval = absl::Milliseconds(100);
constexpr absl::Duration kProbeTimeout = absl::Milliseconds(800);

std::string GrpcError(const grpc::Status& status) {
  return absl::StrCat(absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
                      ": ", status.error_message());
}

bool ReadVarint(const std::string& data, size_t* pos, uint64_t* value) {
  *value = 0;
  for (int shift = 0; shift < 64 && *pos < data.size(); shift += 7) {
    const uint8_t byte = static_cast<uint8_t>(data[(*pos)++]);
    *value |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// Field 1 (status, varint) of a HealthCheckResponse; 0 (UNKNOWN) when absent.
absl::StatusOr<uint64_t> ParseHealthStatus(const std::string& data) {
  uint64_t status = 0;
  size_t pos = 0;
  while (pos < data.size()) {
    uint64_t key, value;
    if (!ReadVarint(data, &pos, &key)) break;
    switch (key & 7) {
      case 0:
        if (!ReadVarint(data, &pos, &value)) return absl::DataLossError("bad health response");
        if ((key >> 3) == 1) status = value;
        break;
      case 1:
        pos += 8;
        break;
      case 2:
        if (!ReadVarint(data, &pos, &value)) return absl::DataLossError("bad health response");
        pos += value;
        break;
      case 5:
        pos += 4;
        break;
      default:
        return absl::DataLossError("bad health response");
    }
  }
  return status;
}

absl::StatusOr<int> ChoosePort(int requested, std::set<int>* used) {
  if (requested != 0) {
    used->insert(requested);
    return requested;
  }
  // A port picked twice in a row would make two of our own processes collide.
  for (int attempt = 0; attempt < 32; ++attempt) {
    const int port = PickFreePort();
    if (port <= 0) return absl::UnavailableError("no free TCP port on 127.0.0.1");
    if (used->insert(port).second) return port;
  }
  return absl::UnavailableError("could not pick distinct free ports");
}

}  // namespace

absl::StatusOr<ServiceBinaries> ServiceBinaries::InBuildDir(const std::string& build_dir) {
  ServiceBinaries b;
  const std::pair<const char*, std::string*> services[] = {
      {"router", &b.router}, {"prefill", &b.prefill}, {"decode", &b.decode}};
  for (const auto& [svc, slot] : services) {
    *slot = absl::StrCat(build_dir, "/services/", svc, "/cleave-", svc);
    if (access(slot->c_str(), X_OK) != 0) {
      return absl::NotFoundError(
          absl::StrCat("service binary ", *slot, " not found (build it with scripts/build.sh)"));
    }
  }
  return b;
}

const char* RoleName(Role role) {
  switch (role) {
    case Role::kRouter:
      return "router";
    case Role::kPrefill:
      return "prefill";
    case Role::kDecode:
      return "decode";
    case Role::kColocated:
      return "colocated";
  }
  return "?";
}

std::string ClusterProcess::address() const { return absl::StrCat(host, ":", port); }

std::shared_ptr<grpc::Channel> MakeProbeChannel(const std::string& address) {
  grpc::ChannelArguments args;
  // gRPC's default reconnect backoff grows to minutes; a server that is still loading
  // its model must be noticed within a poll interval or two once it listens.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

absl::Status CheckServing(const std::shared_ptr<grpc::Channel>& channel, absl::Duration timeout) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  grpc::Slice empty;  // HealthCheckRequest{service: ""} encodes to no bytes
  grpc::ByteBuffer request(&empty, 1), response;
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  // The context's deadline bounds this wait.
  done.WaitForNotification();
  if (!status.ok()) return absl::UnavailableError(GrpcError(status));
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return absl::DataLossError("unreadable health response");
  std::string data;
  for (const grpc::Slice& s : slices)
    data.append(reinterpret_cast<const char*>(s.begin()), s.size());
  ASSIGN_OR_RETURN(uint64_t serving, ParseHealthStatus(data));
  if (serving != kHealthServing) {
    return absl::UnavailableError(absl::StrCat("health status ", serving, " (not SERVING)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<WorkerCounts> QueryWorkerCounts(const std::shared_ptr<grpc::Channel>& router,
                                               absl::Duration timeout) {
  auto stub = cleave::v1::Generation::NewStub(router);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  cleave::v1::ListModelsResponse response;
  grpc::Status status = stub->ListModels(&context, cleave::v1::ListModelsRequest(), &response);
  if (!status.ok()) return absl::UnavailableError(absl::StrCat("ListModels: ", GrpcError(status)));
  if (response.models_size() == 0) return absl::UnavailableError("ListModels: no model listed");
  return WorkerCounts{response.models(0).prefill_workers(), response.models(0).decode_workers()};
}

std::string TailFile(const std::string& path, int max_lines) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  const std::streamoff start = std::max<std::streamoff>(0, size - 16384);
  in.seekg(start);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  const size_t first = lines.size() > static_cast<size_t>(max_lines) ? lines.size() - max_lines : 0;
  std::string out;
  for (size_t i = first; i < lines.size(); ++i) absl::StrAppend(&out, "  | ", lines[i], "\n");
  return out;
}

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(const ClusterSpec& spec,
                                                                  const ServiceBinaries& binaries,
                                                                  const std::string& log_dir,
                                                                  absl::Duration ready_timeout,
                                                                  const Hooks& hooks) {
  RETURN_IF_ERROR(spec.Validate());
  std::error_code ec;
  std::filesystem::create_directories(log_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("creating ", log_dir, ": ", ec.message()));
  std::unique_ptr<LocalCluster> cluster(new LocalCluster(spec, log_dir, hooks));
  RETURN_IF_ERROR(cluster->Plan(binaries));
  const absl::Time deadline = absl::Now() + ready_timeout;
  // Workers register with the router as they come up, so it must be listening first.
  RETURN_IF_ERROR(cluster->Spawn(cluster->router()));
  RETURN_IF_ERROR(cluster->WaitServing({&cluster->router()}, false, deadline));
  std::vector<ClusterProcess*> all;
  for (auto& p : cluster->processes_) {
    if (p->role != Role::kRouter) RETURN_IF_ERROR(cluster->Spawn(*p));
    all.push_back(p.get());
  }
  RETURN_IF_ERROR(cluster->WaitServing(all, true, deadline));
  return cluster;
}

LocalCluster::~LocalCluster() { Stop(); }

absl::Status LocalCluster::Plan(const ServiceBinaries& binaries) {
  std::set<int> used;
  auto add = [&](Role role, const std::string& name, int port,
                 int metrics_port) -> absl::StatusOr<ClusterProcess*> {
    auto p = std::make_unique<ClusterProcess>();
    p->name = name;
    p->role = role;
    p->host = spec_.host;
    ASSIGN_OR_RETURN(p->port, ChoosePort(port, &used));
    if (spec_.metrics) {
      ASSIGN_OR_RETURN(p->metrics_port, ChoosePort(metrics_port, &used));
    }
    p->log_path = absl::StrCat(log_dir_, "/", name, ".log");
    p->argv = {"", absl::StrCat("--host=", p->host), absl::StrCat("--port=", p->port),
               absl::StrCat("--metrics_port=", p->metrics_port),
               absl::StrCat("--model=", spec_.model)};
    processes_.push_back(std::move(p));
    return processes_.back().get();
  };

  ASSIGN_OR_RETURN(ClusterProcess * router,
                   add(Role::kRouter, "router", spec_.router_port, spec_.router_metrics_port));
  router->argv[0] = binaries.router;
  if (spec_.policy) router->argv.push_back(absl::StrCat("--policy=", *spec_.policy));
  if (spec_.heartbeat_timeout_ms) {
    router->argv.push_back(absl::StrCat("--heartbeat_timeout_ms=", *spec_.heartbeat_timeout_ms));
  }
  for (const std::string& f : spec_.router_extra_flags) router->argv.push_back(f);
  const std::string router_address = router->address();

  const std::tuple<Role, const WorkerSpec*, const std::string*> kinds[] = {
      {Role::kPrefill, &spec_.prefill, &binaries.prefill},
      {Role::kDecode, &spec_.decode, &binaries.decode},
      {Role::kColocated, &spec_.colocated, &binaries.decode},
  };
  for (const auto& [role, worker, binary] : kinds) {
    for (int i = 0; i < worker->replicas; ++i) {
      const std::string name = absl::StrCat(RoleName(role), "-", i);
      ASSIGN_OR_RETURN(ClusterProcess * p, add(role, name, 0, 0));
      p->argv[0] = *binary;
      auto& a = p->argv;
      a.push_back(absl::StrCat("--router=", router_address));
      a.push_back(absl::StrCat("--instance=", name));
      const std::pair<const char*, const std::optional<int64_t>*> ints[] = {
          {"kv_cache_mib", &worker->kv_cache_mib},
          {"max_num_seqs", &worker->max_num_seqs},
          {"max_num_batched_tokens", &worker->max_num_batched_tokens},
          {"max_prefill_chunk", &worker->max_prefill_chunk},
          {"block_size", &worker->block_size},
      };
      for (const auto& [flag, value] : ints) {
        if (value->has_value()) a.push_back(absl::StrCat("--", flag, "=", **value));
      }
      if (worker->ucx_tls) a.push_back(absl::StrCat("--ucx_tls=", *worker->ucx_tls));
      if (role == Role::kColocated) a.push_back("--colocated");
      for (const std::string& f : worker->extra_flags) a.push_back(f);
    }
  }
  return absl::OkStatus();
}

absl::Status LocalCluster::Spawn(ClusterProcess& p) {
  SubprocessOptions options;
  options.argv = p.argv;
  options.log_path = p.log_path;
  // Ctrl-C in a terminal reaches only the launcher, which then stops workers before the
  // router rather than everything at once.
  options.new_process_group = true;
  options.kill_grace = absl::Seconds(10);
  auto process = Subprocess::Spawn(options);
  if (!process.ok()) {
    return absl::Status(process.status().code(),
                        absl::StrCat("starting ", p.name, ": ", process.status().message()));
  }
  p.process = std::move(*process);
  p.exit_reported = false;
  if (!p.channel) p.channel = MakeProbeChannel(p.address());
  if (hooks_.on_spawn) hooks_.on_spawn(p);
  return absl::OkStatus();
}

std::string LocalCluster::Describe(const ClusterProcess& p) const {
  return absl::StrCat(p.name, " (", p.address(), ", log ", p.log_path, ")");
}

absl::Status LocalCluster::WaitServing(const std::vector<ClusterProcess*>& procs, bool check_counts,
                                       absl::Time deadline) {
  std::vector<bool> serving(procs.size(), false);
  std::vector<std::string> last_error(procs.size(), "not probed yet");
  std::string counts_error;
  while (true) {
    if (hooks_.should_abort && hooks_.should_abort()) {
      return absl::CancelledError("interrupted while waiting for the cluster to become ready");
    }
    for (ClusterProcess* p : procs) {
      if (p->process == nullptr || p->process->Running()) continue;
      return absl::UnavailableError(
          absl::StrCat(p->name, " exited during startup (",
                       DescribeExitStatus(p->process->exit_status().value_or(-1)), "); log ",
                       p->log_path, ":\n", TailFile(p->log_path, 20)));
    }
    bool all_serving = true;
    for (size_t i = 0; i < procs.size(); ++i) {
      if (serving[i]) continue;
      absl::Status st = CheckServing(procs[i]->channel, kProbeTimeout);
      serving[i] = st.ok();
      if (!st.ok()) {
        last_error[i] = std::string(st.message());
        all_serving = false;
      }
    }
    if (all_serving) {
      if (!check_counts) return absl::OkStatus();
      auto counts = QueryWorkerCounts(router().channel, kProbeTimeout);
      if (counts.ok() && counts->prefill == spec_.expected_prefill_workers() &&
          counts->decode == spec_.expected_decode_workers()) {
        return absl::OkStatus();
      }
      counts_error =
          counts.ok()
              ? absl::StrCat("the router lists ", counts->prefill, " prefill and ", counts->decode,
                             " decode workers, expected ", spec_.expected_prefill_workers(),
                             " and ", spec_.expected_decode_workers())
              : std::string(counts.status().message());
    }
    if (absl::Now() >= deadline) {
      std::string msg = "the cluster did not become ready in time:";
      for (size_t i = 0; i < procs.size(); ++i) {
        if (!serving[i]) absl::StrAppend(&msg, "\n  ", Describe(*procs[i]), ": ", last_error[i]);
      }
      if (all_serving) absl::StrAppend(&msg, "\n  ", counts_error, "; ", Describe(router()));
      return absl::DeadlineExceededError(msg);
    }
    absl::SleepFor(std::min(kPollInterval, deadline - absl::Now()));
  }
}

absl::Status LocalCluster::WaitReady(absl::Duration timeout) {
  std::vector<ClusterProcess*> all;
  for (auto& p : processes_) all.push_back(p.get());
  return WaitServing(all, true, absl::Now() + timeout);
}

absl::Status LocalCluster::Respawn(const std::string& name) {
  ClusterProcess* p = Find(name);
  if (p == nullptr) return absl::NotFoundError(absl::StrCat("no process named ", name));
  if (p->process != nullptr && p->process->Running()) {
    return absl::FailedPreconditionError(absl::StrCat(name, " is still running"));
  }
  return Spawn(*p);
}

std::vector<ClusterProcess*> LocalCluster::ByRole(Role role) const {
  std::vector<ClusterProcess*> out;
  for (const auto& p : processes_) {
    if (p->role == role) out.push_back(p.get());
  }
  return out;
}

ClusterProcess* LocalCluster::Find(const std::string& name) const {
  for (const auto& p : processes_) {
    if (p->name == name) return p.get();
  }
  return nullptr;
}

std::vector<ClusterProcess*> LocalCluster::CollectExited() {
  std::vector<ClusterProcess*> out;
  for (auto& p : processes_) {
    if (p->process == nullptr || p->exit_reported || p->process->Running()) continue;
    p->exit_reported = true;
    out.push_back(p.get());
  }
  return out;
}

std::vector<std::string> LocalCluster::Stop(absl::Duration grace) {
  std::vector<std::string> notes;
  auto stop_group = [&](const std::vector<ClusterProcess*>& group) {
    std::vector<ClusterProcess*> signalled;
    for (ClusterProcess* p : group) {
      if (p->process != nullptr && p->process->Signal(SIGTERM).ok()) signalled.push_back(p);
    }
    const absl::Time deadline = absl::Now() + grace;
    for (ClusterProcess* p : signalled) {
      p->exit_reported = true;
      auto status = p->process->WaitFor(std::max(absl::ZeroDuration(), deadline - absl::Now()));
      if (!status.ok()) {
        (void)p->process->Signal(SIGKILL);
        (void)p->process->WaitFor(absl::InfiniteDuration());
        notes.push_back(absl::StrCat(p->name, " ignored SIGTERM for ", absl::FormatDuration(grace),
                                     "; killed (log ", p->log_path, ")"));
      } else if (*status != 0 && *status != 128 + SIGTERM) {
        notes.push_back(absl::StrCat(p->name, " stopped with ", DescribeExitStatus(*status),
                                     " (log ", p->log_path, ")"));
      }
    }
  };
  std::vector<ClusterProcess*> workers;
  for (auto& p : processes_) {
    if (p->role != Role::kRouter) workers.push_back(p.get());
  }
  stop_group(workers);
  if (!processes_.empty()) stop_group({&router()});
  return notes;
}

}  // namespace cleave::launch
