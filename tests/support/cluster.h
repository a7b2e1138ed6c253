// A real cluster for integration tests: the router, prefill, decode and colocated
// service binaries as processes on 127.0.0.1 with free ports, logs in a temp dir.
//
//   auto cluster = cleave::testing::TestCluster::Start({.prefill = 2, .decode = 1});
//   ASSERT_TRUE(cluster.ok()) << cluster.status();
//   auto stub = (*cluster)->GenerationStub();
//   ...
//   (*cluster)->prefill_workers()[0]->process->Signal(SIGKILL);
//
// The binaries come from $CLEAVE_BINARY_DIR/services/<svc>/cleave-<svc> (ctest sets the
// variable), else from the build tree the test was compiled in; a test using the harness
// should add_dependencies on cleave-router, cleave-prefill, cleave-decode and cleave.
#ifndef CLEAVE_TESTS_SUPPORT_CLUSTER_H_
#define CLEAVE_TESTS_SUPPORT_CLUSTER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cleave/v1/generation.grpc.pb.h"
#include "cleave/v1/handoff.pb.h"
#include "tools/cleave/local_cluster.h"

namespace cleave::testing {

struct ClusterOptions {
  int prefill = 1;
  int decode = 1;
  int colocated = 0;
  std::string policy;  // round_robin, least_load; empty: the router's default
  int64_t kv_cache_mib = 64;
  std::optional<int64_t> heartbeat_timeout_ms;
  std::optional<int64_t> block_size;
  std::optional<int64_t> max_num_seqs;
  std::optional<int64_t> max_num_batched_tokens;
  std::optional<int64_t> max_prefill_chunk;
  // Appended verbatim to each kind's command line, e.g. {"--ucx_tls=tcp"}.
  std::vector<std::string> router_flags;
  std::vector<std::string> prefill_flags;
  std::vector<std::string> decode_flags;
  std::vector<std::string> colocated_flags;
  std::string model_dir;  // empty: TinyModelDir()
  absl::Duration ready_timeout = absl::Seconds(120);
};

// The build tree holding services/ and tools/cleave/cleave ($CLEAVE_BINARY_DIR or the
// compile-time one).
std::string BinaryDir();

// A fresh directory under /tmp, removed at process exit.
std::string MakeScratchDir(const std::string& tag);

// The tiny preset (byte tokenizer), written once per process by `cleave make-model`. The
// harness runs the tool rather than linking the engine, so a test that only talks to the
// cluster over gRPC does not load the engine's libraries (SentencePiece among them).
absl::StatusOr<std::string> TinyModelDir();

class TestCluster {
 public:
  // Starts everything and waits until each process serves and the router lists every
  // worker. The error names the process that failed and quotes its log's tail.
  static absl::StatusOr<std::unique_ptr<TestCluster>> Start(const ClusterOptions& options = {});

  // Stops the cluster; if the running test has failed, prints each log's tail first.
  ~TestCluster();

  launch::LocalCluster& cluster() { return *cluster_; }
  std::string router_address() const { return cluster_->router_address(); }
  std::unique_ptr<cleave::v1::Generation::Stub> GenerationStub() const;

  launch::ClusterProcess& router() { return cluster_->router(); }
  std::vector<launch::ClusterProcess*> prefill_workers() const;
  std::vector<launch::ClusterProcess*> decode_workers() const;
  std::vector<launch::ClusterProcess*> colocated_workers() const;
  // nullptr if there is no such process ("router", "prefill-0", "decode-1", ...).
  launch::ClusterProcess* process(const std::string& name) const { return cluster_->Find(name); }

  const std::string& log_dir() const { return cluster_->log_dir(); }
  // The last `lines` lines of every process's log, headed by its name.
  std::string LogTails(int lines = 40) const;

 private:
  explicit TestCluster(std::unique_ptr<launch::LocalCluster> cluster)
      : cluster_(std::move(cluster)) {}

  std::unique_ptr<launch::LocalCluster> cluster_;
};

// cleave.v1.WorkerStats/Stats on a worker's gRPC address.
absl::StatusOr<cleave::v1::WorkerStatsResponse> FetchWorkerStats(
    const std::string& address, absl::Duration timeout = absl::Seconds(5));

// GET /metrics over a plain socket; the body (Prometheus text format) on HTTP 200.
absl::StatusOr<std::string> ScrapeMetrics(int port, absl::Duration timeout = absl::Seconds(5),
                                          const std::string& host = "127.0.0.1");

// The value of the first sample in Prometheus text whose series starts with `series`,
// e.g. MetricValue(text, "cleave_requests_total{") or MetricValue(text, "up ").
std::optional<double> MetricValue(const std::string& text, const std::string& series);

}  // namespace cleave::testing

#endif  // CLEAVE_TESTS_SUPPORT_CLUSTER_H_
