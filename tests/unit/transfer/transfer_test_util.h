// Test helpers shared by the transfer tests and their peer process (transfer_test_peer): a
// deterministic byte pattern, length-prefixed frames over pipes with bounded waits, and a
// handle on a spawned peer.
#ifndef CLEAVE_TESTS_UNIT_TRANSFER_TRANSFER_TEST_UTIL_H_
#define CLEAVE_TESTS_UNIT_TRANSFER_TRANSFER_TEST_UTIL_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/runtime/kv_storage.h"

extern char** environ;

namespace cleave::transfer_test {

// Fills `n` bytes with a stream that depends on `seed` (splitmix64), so two processes can
// produce, and a test can predict, the same distinct contents.
inline void FillPattern(void* p, size_t n, uint64_t seed) {
  auto* out = static_cast<unsigned char*>(p);
  uint64_t x = seed;
  for (size_t i = 0; i < n; i += 8) {
    x += 0x9e3779b97f4a7c15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    std::memcpy(out + i, &z, std::min<size_t>(8, n - i));
  }
}

// The seed of region r (K0, V0, K1, ...) of a pool filled from `seed`.
inline uint64_t RegionSeed(uint64_t seed, int region) {
  return seed * 1000003ull + static_cast<uint64_t>(region) * 7919ull + 1;
}

inline void FillKvStorage(const KvStorage& kv, uint64_t seed) {
  const KvStorageShape& s = kv.shape();
  const size_t bytes = static_cast<size_t>(s.num_blocks) * s.block_size * s.num_kv_heads *
                       s.head_dim * sizeof(float);
  for (int l = 0; l < s.num_layers; ++l) {
    FillPattern(kv.k(l), bytes, RegionSeed(seed, 2 * l));
    FillPattern(kv.v(l), bytes, RegionSeed(seed, 2 * l + 1));
  }
}

inline bool WriteAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

inline bool WriteFrame(int fd, const std::string& payload) {
  const uint64_t n = payload.size();
  return WriteAll(fd, &n, sizeof(n)) && WriteAll(fd, payload.data(), payload.size());
}

// Reads exactly `n` bytes before `deadline`.
inline absl::Status ReadAll(int fd, void* data, size_t n, absl::Time deadline) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const int ms = deadline == absl::InfiniteFuture()
                       ? -1
                       : static_cast<int>(std::clamp<int64_t>(
                             absl::ToInt64Milliseconds(deadline - absl::Now()), 0, 1 << 30));
    pollfd pfd{fd, POLLIN, 0};
    const int ready = poll(&pfd, 1, ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) return absl::DeadlineExceededError("peer did not answer in time");
    const ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return absl::UnavailableError("peer closed its pipe");
    p += r;
    n -= static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

inline absl::StatusOr<std::string> ReadFrame(int fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  uint64_t n = 0;
  if (absl::Status s = ReadAll(fd, &n, sizeof(n), deadline); !s.ok()) return s;
  if (n > (uint64_t{1} << 32)) return absl::DataLossError("absurd frame length");
  std::string payload(n, '\0');
  if (absl::Status s = ReadAll(fd, payload.data(), n, deadline); !s.ok()) return s;
  return payload;
}

// A child process with its stdin/stdout as frame pipes; killed and reaped on destruction.
class PeerProcess {
 public:
  static absl::StatusOr<PeerProcess> Spawn(const std::string& path,
                                           const std::vector<std::string>& args) {
    int to_child[2], from_child[2];
    if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0) {
      return absl::InternalError("pipe2 failed");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_child[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, from_child[1], STDOUT_FILENO);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(path.c_str()));
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, path.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(to_child[0]);
    close(from_child[1]);
    if (rc != 0) {
      close(to_child[1]);
      close(from_child[0]);
      return absl::InternalError(absl::StrCat("posix_spawn ", path, ": ", strerror(rc)));
    }
    PeerProcess p;
    p.pid_ = pid;
    p.in_ = to_child[1];
    p.out_ = from_child[0];
    return p;
  }

  PeerProcess() = default;
  PeerProcess(PeerProcess&& o) noexcept { *this = std::move(o); }
  PeerProcess& operator=(PeerProcess&& o) noexcept {
    std::swap(pid_, o.pid_);
    std::swap(in_, o.in_);
    std::swap(out_, o.out_);
    return *this;
  }
  ~PeerProcess() { Kill(); }

  pid_t pid() const { return pid_; }
  bool Send(const std::string& frame) { return WriteFrame(in_, frame); }
  absl::StatusOr<std::string> Receive(absl::Duration timeout) { return ReadFrame(out_, timeout); }

  // SIGKILL and reap: after this returns the process no longer exists.
  void Kill() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    CloseFds();
  }

  // Waits (bounded) for a voluntary exit; returns the exit code or -1.
  int WaitExit(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (pid_ > 0) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        CloseFds();
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      if (absl::Now() > deadline) break;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return -1;
  }

 private:
  void CloseFds() {
    if (in_ >= 0) close(in_);
    if (out_ >= 0) close(out_);
    in_ = out_ = -1;
  }

  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
};

// The transfer_test_peer binary next to the running test binary.
inline std::string PeerBinary() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  std::string self(buf, n > 0 ? static_cast<size_t>(n) : 0);
  return self.substr(0, self.rfind('/') + 1) + "transfer_test_peer";
}

// A running peer that registered a KV pool of `shape` filled from `seed`.
struct Target {
  PeerProcess process;
  std::string address, descriptor;
  KvStorageShape shape;

  // The peer's regions (K0, V0, K1, ...) as they are now.
  absl::StatusOr<std::vector<std::string>> Dump(absl::Duration timeout = absl::Seconds(20)) {
    if (!process.Send("dump")) return absl::UnavailableError("peer is gone");
    std::vector<std::string> regions;
    for (int r = 0; r < 2 * shape.num_layers; ++r) {
      absl::StatusOr<std::string> bytes = process.Receive(timeout);
      if (!bytes.ok()) return bytes.status();
      regions.push_back(*std::move(bytes));
    }
    return regions;
  }
};

// `transports` "-" means UCX's default.
inline absl::StatusOr<Target> StartTarget(const std::string& transports,
                                          const KvStorageShape& shape, uint64_t seed) {
  Target t;
  t.shape = shape;
  absl::StatusOr<PeerProcess> p = PeerProcess::Spawn(
      PeerBinary(),
      {transports.empty() ? "-" : transports, absl::StrCat(shape.num_layers),
       absl::StrCat(shape.num_blocks), absl::StrCat(shape.block_size),
       absl::StrCat(shape.num_kv_heads), absl::StrCat(shape.head_dim), absl::StrCat(seed)});
  if (!p.ok()) return p.status();
  t.process = *std::move(p);
  absl::StatusOr<std::string> address = t.process.Receive(absl::Seconds(20));
  if (!address.ok()) return address.status();
  absl::StatusOr<std::string> descriptor = t.process.Receive(absl::Seconds(20));
  if (!descriptor.ok()) return descriptor.status();
  t.address = *std::move(address);
  t.descriptor = *std::move(descriptor);
  return t;
}

}  // namespace cleave::transfer_test

#endif  // CLEAVE_TESTS_UNIT_TRANSFER_TRANSFER_TEST_UTIL_H_
