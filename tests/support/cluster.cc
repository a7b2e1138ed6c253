#include "tests/support/cluster.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "cleave/v1/handoff.grpc.pb.h"
#include "engine/util/status.h"
#include "engine/util/subprocess.h"
#include "gtest/gtest.h"

namespace cleave::testing {
namespace {

using launch::ClusterProcess;
using launch::Role;

// Connects to host:port within the deadline; -1 (errno set) on failure.
int ConnectBefore(const std::string& host, int port, absl::Time deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) {
    errno = EHOSTUNREACH;
    return -1;
  }
  int fd = -1;
  for (addrinfo* ai = res; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) break;
    int err = errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      const int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      err = ETIMEDOUT;
      socklen_t len = sizeof(err);
      if (ms > 0 && poll(&p, 1, ms) == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    }
    if (err != 0) {
      close(fd);
      fd = -1;
      errno = err;
    }
  }
  freeaddrinfo(res);
  return fd;
}

absl::Mutex scratch_mu(absl::kConstInit);
std::vector<std::string>* scratch_dirs ABSL_GUARDED_BY(scratch_mu) = nullptr;

void RemoveScratchDirs() {
  absl::MutexLock lock(&scratch_mu);
  for (const std::string& d : *scratch_dirs) {
    std::error_code ec;
    std::filesystem::remove_all(d, ec);
  }
}

}  // namespace

std::string MakeScratchDir(const std::string& tag) {
  std::string tmpl = "/tmp/cleave-" + tag + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    std::fprintf(stderr, "mkdtemp %s: %s\n", tmpl.c_str(), std::strerror(errno));
    std::abort();
  }
  absl::MutexLock lock(&scratch_mu);
  if (scratch_dirs == nullptr) {
    scratch_dirs = new std::vector<std::string>();
    std::atexit(RemoveScratchDirs);
  }
  scratch_dirs->push_back(tmpl);
  return tmpl;
}

absl::StatusOr<std::string> TinyModelDir() {
  static absl::Mutex mu(absl::kConstInit);
  static std::string* dir ABSL_GUARDED_BY(mu) = nullptr;
  absl::MutexLock lock(&mu);
  if (dir != nullptr) return *dir;
  const std::string scratch = MakeScratchDir("model");
  const std::string out = scratch + "/tiny";
  SubprocessOptions options;
  options.argv = {BinaryDir() + "/tools/cleave/cleave",
                  "make-model",
                  "--preset",
                  "tiny",
                  "--out",
                  out,
                  "--seed",
                  "1"};
  options.log_path = scratch + "/make-model.log";
  ASSIGN_OR_RETURN(auto tool, Subprocess::Spawn(options));
  auto status = tool->WaitFor(absl::Seconds(120));
  if (!status.ok() || *status != 0) {
    return absl::InternalError(absl::StrCat("cleave make-model failed (",
                                            status.ok() ? DescribeExitStatus(*status) : "timed out",
                                            "):\n", launch::TailFile(options.log_path, 20)));
  }
  dir = new std::string(out);
  return *dir;
}

std::string BinaryDir() {
  if (const char* dir = std::getenv("CLEAVE_BINARY_DIR"); dir != nullptr && *dir != '\0')
    return dir;
  return CLEAVE_DEFAULT_BINARY_DIR;
}

absl::StatusOr<std::unique_ptr<TestCluster>> TestCluster::Start(const ClusterOptions& options) {
  launch::ClusterSpec spec;
  spec.model = options.model_dir;
  if (spec.model.empty()) {
    ASSIGN_OR_RETURN(spec.model, TinyModelDir());
  }
  if (!options.policy.empty()) spec.policy = options.policy;
  spec.heartbeat_timeout_ms = options.heartbeat_timeout_ms;
  spec.router_extra_flags = options.router_flags;
  const std::tuple<launch::WorkerSpec*, int, const std::vector<std::string>*> kinds[] = {
      {&spec.prefill, options.prefill, &options.prefill_flags},
      {&spec.decode, options.decode, &options.decode_flags},
      {&spec.colocated, options.colocated, &options.colocated_flags},
  };
  for (const auto& [worker, replicas, flags] : kinds) {
    worker->replicas = replicas;
    worker->kv_cache_mib = options.kv_cache_mib;
    worker->block_size = options.block_size;
    worker->max_num_seqs = options.max_num_seqs;
    worker->max_num_batched_tokens = options.max_num_batched_tokens;
    worker->max_prefill_chunk = options.max_prefill_chunk;
    worker->extra_flags = *flags;
  }
  ASSIGN_OR_RETURN(launch::ServiceBinaries binaries,
                   launch::ServiceBinaries::InBuildDir(BinaryDir()));
  ASSIGN_OR_RETURN(auto cluster,
                   launch::LocalCluster::Start(spec, binaries, MakeScratchDir("cluster"),
                                               options.ready_timeout));
  return std::unique_ptr<TestCluster>(new TestCluster(std::move(cluster)));
}

TestCluster::~TestCluster() {
  // A cluster shared by a suite ends in TearDownTestSuite, outside any test.
  const ::testing::UnitTest* unit = ::testing::UnitTest::GetInstance();
  bool failed = ::testing::Test::HasFailure();
  if (unit->current_test_info() == nullptr && unit->current_test_suite() != nullptr) {
    failed = failed || unit->current_test_suite()->failed_test_count() > 0;
  }
  if (failed) {
    std::fprintf(stderr, "--- cluster logs (%s) ---\n%s", log_dir().c_str(), LogTails().c_str());
  }
  for (const std::string& note : cluster_->Stop()) std::fprintf(stderr, "%s\n", note.c_str());
}

std::unique_ptr<cleave::v1::Generation::Stub> TestCluster::GenerationStub() const {
  return cleave::v1::Generation::NewStub(cluster_->router().channel);
}

std::vector<ClusterProcess*> TestCluster::prefill_workers() const {
  return cluster_->ByRole(Role::kPrefill);
}
std::vector<ClusterProcess*> TestCluster::decode_workers() const {
  return cluster_->ByRole(Role::kDecode);
}
std::vector<ClusterProcess*> TestCluster::colocated_workers() const {
  return cluster_->ByRole(Role::kColocated);
}

std::string TestCluster::LogTails(int lines) const {
  std::string out;
  for (const auto& p : cluster_->processes()) {
    absl::StrAppend(&out, "== ", p->name, " (", p->log_path, ")\n",
                    launch::TailFile(p->log_path, lines));
  }
  return out;
}

absl::StatusOr<cleave::v1::WorkerStatsResponse> FetchWorkerStats(const std::string& address,
                                                                 absl::Duration timeout) {
  auto stub = cleave::v1::WorkerStats::NewStub(launch::MakeProbeChannel(address));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  cleave::v1::WorkerStatsResponse response;
  grpc::Status status = stub->Stats(&context, cleave::v1::WorkerStatsRequest(), &response);
  if (!status.ok()) {
    return absl::Status(
        static_cast<absl::StatusCode>(status.error_code()),
        absl::StrCat("WorkerStats/Stats on ", address, ": ", status.error_message()));
  }
  return response;
}

absl::StatusOr<std::string> ScrapeMetrics(int port, absl::Duration timeout,
                                          const std::string& host) {
  const absl::Time deadline = absl::Now() + timeout;
  const std::string where = absl::StrCat(host, ":", port, "/metrics");
  const int fd = ConnectBefore(host, port, deadline);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("connect ", where, ": ", std::strerror(errno)));
  }
  // HTTP/1.0 with Connection: close: the body ends when the server closes, never chunked.
  const std::string request = absl::StrCat("GET /metrics HTTP/1.0\r\nHost: ", host, ":", port,
                                           "\r\nConnection: close\r\n\r\n");
  std::string response;
  size_t sent = 0;
  bool failed = false;
  while (!failed) {
    const int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (ms <= 0) break;
    pollfd p{fd, static_cast<short>(sent < request.size() ? POLLOUT : POLLIN), 0};
    if (poll(&p, 1, ms) != 1) continue;
    if (sent < request.size()) {
      const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EINTR) failed = true;
      if (n > 0) sent += n;
      continue;
    }
    char buf[16384];
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0) {
      close(fd);
      const size_t header_end = response.find("\r\n\r\n");
      if (response.rfind("HTTP/1.", 0) != 0 || header_end == std::string::npos) {
        return absl::DataLossError(absl::StrCat(where, ": malformed HTTP response"));
      }
      const std::string status_line = response.substr(0, response.find("\r\n"));
      if (status_line.find(" 200") == std::string::npos) {
        return absl::UnavailableError(absl::StrCat(where, ": ", status_line));
      }
      return response.substr(header_end + 4);
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) failed = true;
    if (n > 0) response.append(buf, n);
  }
  close(fd);
  return absl::DeadlineExceededError(
      absl::StrCat(where, failed ? ": connection failed" : ": no complete answer in time"));
}

std::optional<double> MetricValue(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#' || !absl::StartsWith(line, series)) continue;
    // The series is the name plus an optional {labels}; the value follows a space.
    size_t end = line.find('{') < line.find(' ') ? line.find('}') : line.find(' ');
    if (end == absl::string_view::npos) continue;
    if (line[end] == '}') ++end;
    if (end < series.size()) continue;  // `series` named a longer metric, e.g. x for x_total
    if (end > series.size() && series.back() != '{' && line[series.size()] != '{') continue;
    std::vector<absl::string_view> rest = absl::StrSplit(line.substr(end), ' ', absl::SkipEmpty());
    double value;
    if (!rest.empty() && absl::SimpleAtod(rest[0], &value)) return value;
  }
  return std::nullopt;
}

}  // namespace cleave::testing
