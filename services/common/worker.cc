#include "services/common/worker.h"

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "engine/model/checkpoint.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/util/log.h"
#include "engine/util/status.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "services/common/worker_flags.h"

namespace cleave {

EngineConfig EngineConfigFromFlags() {
  EngineConfig c;
  c.block_size = absl::GetFlag(FLAGS_block_size);
  c.kv_cache_mib = absl::GetFlag(FLAGS_kv_cache_mib);
  c.enable_prefix_caching = absl::GetFlag(FLAGS_enable_prefix_caching);
  c.scheduler.max_num_seqs = absl::GetFlag(FLAGS_max_num_seqs);
  c.scheduler.max_num_batched_tokens = absl::GetFlag(FLAGS_max_num_batched_tokens);
  c.scheduler.max_prefill_chunk = absl::GetFlag(FLAGS_max_prefill_chunk);
  return c;
}

absl::StatusOr<std::unique_ptr<Engine>> LoadEngine(const std::string& model_dir,
                                                   const EngineConfig& config,
                                                   absl::Duration handoff_quarantine,
                                                   std::unique_ptr<Backend>* backend) {
  RETURN_IF_ERROR(config.scheduler.Validate());
  ASSIGN_OR_RETURN(auto checkpoint, Checkpoint::Open(model_dir));
  ASSIGN_OR_RETURN(auto tokenizer, LoadTokenizer(model_dir));
  *backend = MakeCpuBackend();
  ASSIGN_OR_RETURN(auto model, MixtralModel::Load(*checkpoint, backend->get()));
  ASSIGN_OR_RETURN(auto core, EngineCore::Create(std::move(model), std::move(tokenizer), config));
  return std::make_unique<Engine>(std::move(core), handoff_quarantine);
}

v1::WorkerLoad LoadToProto(const Engine::Load& load) {
  v1::WorkerLoad p;
  p.set_running_requests(load.running);
  p.set_waiting_requests(load.waiting + load.pending_imports);
  p.set_queued_prefill_tokens(load.queued_prefill_tokens);
  p.set_free_kv_blocks(load.free_kv_blocks);
  p.set_total_kv_blocks(load.total_kv_blocks);
  return p;
}

RouterLink::RouterLink(std::string router_address, v1::RegisterRequest registration,
                       const Engine* engine, ServiceMetrics* metrics)
    : router_address_(std::move(router_address)),
      registration_(std::move(registration)),
      engine_(engine),
      metrics_(metrics) {}

RouterLink::~RouterLink() { Stop(); }

void RouterLink::Start() { thread_ = std::thread([this] { Run(); }); }

void RouterLink::Stop() {
  if (!thread_.joinable()) return;
  if (!stop_.HasBeenNotified()) stop_.Notify();
  thread_.join();
}

void RouterLink::Run() {
  auto channel = grpc::CreateChannel(router_address_, grpc::InsecureChannelCredentials());
  auto stub = v1::Registry::NewStub(channel);
  uint64_t worker_id = 0;
  absl::Duration interval = absl::Milliseconds(200);
  bool warned = false;
  while (!stop_.WaitForNotificationWithTimeout(worker_id == 0 ? absl::Milliseconds(200)
                                                               : interval)) {
    const Engine::Load load = engine_->load();
    if (metrics_) metrics_->SetEngineLoad(load);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    if (worker_id == 0) {
      v1::RegisterRequest req = registration_;
      *req.mutable_load() = LoadToProto(load);
      v1::RegisterResponse resp;
      grpc::Status st = stub->Register(&ctx, req, &resp);
      if (!st.ok()) {
        if (!warned) LOG_WARN("router {}: register failed ({}); retrying", router_address_,
                              st.error_message());
        warned = true;
        continue;
      }
      worker_id = resp.worker_id();
      interval = absl::Milliseconds(resp.heartbeat_interval_ms());
      LOG_INFO("registered with router {} as worker {}", router_address_, worker_id);
      continue;
    }
    v1::HeartbeatRequest hb;
    hb.set_worker_id(worker_id);
    *hb.mutable_load() = LoadToProto(load);
    v1::HeartbeatResponse resp;
    grpc::Status st = stub->Heartbeat(&ctx, hb, &resp);
    if (st.error_code() == grpc::StatusCode::NOT_FOUND) {
      LOG_WARN("router {} forgot worker {}; registering again", router_address_, worker_id);
      worker_id = 0;
    } else if (!st.ok()) {
      LOG_WARN("router {}: heartbeat failed: {}", router_address_, st.error_message());
    }
  }
  if (worker_id != 0) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
    v1::DeregisterRequest req;
    req.set_worker_id(worker_id);
    v1::DeregisterResponse resp;
    (void)stub->Deregister(&ctx, req, &resp);
  }
}

grpc::ServerUnaryReactor* WorkerStatsService::Stats(grpc::CallbackServerContext* ctx,
                                                    const v1::WorkerStatsRequest* request,
                                                    v1::WorkerStatsResponse* response) {
  const Engine::Load load = engine_->load();
  response->set_instance(instance_);
  response->set_role(role_);
  *response->mutable_load() = LoadToProto(load);
  response->set_live_requests(load.running + load.waiting + load.pending_imports + load.exported);
  response->set_held_kv_blocks(load.total_kv_blocks - load.free_kv_blocks);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace cleave
