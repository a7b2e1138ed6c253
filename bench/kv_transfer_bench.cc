// KV transfer benchmark: UcxAgent::Write (completion included) from this process into a
// forked target process's registered memory, next to a plain memcpy of the same bytes in the
// same run, per transport set and size. Each row: best and median of --repeats after one
// warm-up write; ratio = write throughput / memcpy throughput. The target checks a checksum of
// what landed after every size.
//
//   cleave_kv_transfer_bench [--sizes-mb 1,4,16,64,256] [--repeats 5] [--segment-kb 0]
//                            [--only LABEL]
// --segment-kb N splits each write into N-KB segments (0: one segment), like a KV block
// mapping that does not coalesce.
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/transfer/ucx_agent.h"
#include "engine/util/log.h"

namespace cleave {
namespace {

using Clock = std::chrono::steady_clock;

struct Config {
  std::string label;
  std::string transports;  // "" = UCX default
  WriteProtocol protocol = WriteProtocol::kRendezvous;
  bool peer_errors = false;
  size_t max_mb = 0;  // 0: all sizes
};

// RMA rows stop at 64 MB: on 1.13 host memory put is emulated and can crawl at 0.07 GB/s.
std::vector<Config> DefaultConfigs() {
  return {
      {"default", "", WriteProtocol::kRendezvous, false, 0},
      {"posix,cma,self", "posix,cma,self", WriteProtocol::kRendezvous, false, 0},
      {"sysv,cma,self", "sysv,cma,self", WriteProtocol::kRendezvous, false, 0},
      {"tcp", "tcp", WriteProtocol::kRendezvous, false, 0},
      {"tcp+peer-errors", "tcp", WriteProtocol::kRendezvous, true, 0},
      {"posix,cma,self", "posix,cma,self", WriteProtocol::kRma, false, 64},
      {"tcp", "tcp", WriteProtocol::kRma, false, 64},
  };
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "kv_transfer_bench: %s\n", what.c_str());
  std::exit(1);
}

void SendFrame(int fd, const std::string& s) {
  const uint64_t n = s.size();
  std::string buf(reinterpret_cast<const char*>(&n), sizeof(n));
  buf += s;
  for (size_t off = 0; off < buf.size();) {
    const ssize_t w = write(fd, buf.data() + off, buf.size() - off);
    if (w <= 0) Die("peer socket write failed");
    off += static_cast<size_t>(w);
  }
}

std::string ReceiveFrame(int fd) {
  auto read_all = [fd](char* p, size_t n) {
    while (n > 0) {
      const ssize_t r = read(fd, p, n);
      if (r <= 0) Die("peer socket closed");
      p += r;
      n -= static_cast<size_t>(r);
    }
  };
  uint64_t n = 0;
  read_all(reinterpret_cast<char*>(&n), sizeof(n));
  std::string s(n, '\0');
  read_all(s.data(), n);
  return s;
}

uint64_t Checksum(const void* p, size_t n) {
  const auto* w = static_cast<const uint64_t*>(p);
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < n / 8; ++i) h = (h ^ w[i]) * 0x100000001b3ull + i;
  return h;
}

// Page-aligned, touched (so page faults stay out of the timings).
std::unique_ptr<char, decltype(&std::free)> Buffer(size_t bytes, int fill) {
  char* p = static_cast<char*>(std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096));
  if (p == nullptr) Die("out of memory");
  std::memset(p, fill, bytes);
  return {p, &std::free};
}

UcxAgentOptions Options(const Config& c) {
  UcxAgentOptions o;
  o.transports = c.transports;
  o.protocol = c.protocol;
  o.peer_error_handling = c.peer_errors;
  o.default_timeout = absl::Seconds(120);
  o.name = "kv_transfer_bench";
  return o;
}

// The target: per config, registers a buffer, then answers checksum requests until "done".
void TargetMain(int fd) {
  while (true) {
    const std::string cmd = ReceiveFrame(fd);
    if (cmd == "exit") return;
    const std::vector<std::string> parts = absl::StrSplit(cmd, '|');
    Config c;
    c.transports = parts.at(1);
    c.protocol = parts.at(2) == "rma" ? WriteProtocol::kRma : WriteProtocol::kRendezvous;
    c.peer_errors = parts.at(3) == "1";
    size_t bytes = 0;
    if (!absl::SimpleAtoi(parts.at(4), &bytes)) Die("bad size");
    auto buf = Buffer(bytes, 0);
    auto agent = UcxAgent::Create(Options(c));
    if (!agent.ok()) Die(agent.status().ToString());
    const std::vector<MemoryRegion> region = {{buf.get(), bytes}};
    auto desc = (*agent)->RegisterMemory(region);
    if (!desc.ok()) Die(desc.status().ToString());
    SendFrame(fd, (*agent)->address());
    SendFrame(fd, *desc);
    SendFrame(fd, absl::StrCat(reinterpret_cast<uint64_t>(buf.get())));
    while (true) {
      const std::string q = ReceiveFrame(fd);
      if (q == "done") break;
      size_t n = 0;
      if (!absl::SimpleAtoi(q, &n)) Die("bad checksum request");
      SendFrame(fd, absl::StrCat(Checksum(buf.get(), n)));
    }
  }
}

struct Stats {
  double best = 0, median = 0;  // GB/s
};

Stats Summarize(std::vector<double> seconds, size_t bytes) {
  std::sort(seconds.begin(), seconds.end());
  return {bytes / seconds.front() / 1e9, bytes / seconds[seconds.size() / 2] / 1e9};
}

void RunConfig(int fd, const Config& c, const std::vector<size_t>& sizes_mb, int repeats,
               size_t segment_bytes) {
  std::vector<size_t> sizes;
  for (size_t mb : sizes_mb) {
    if (c.max_mb == 0 || mb <= c.max_mb) sizes.push_back(mb << 20);
  }
  if (sizes.empty()) return;
  const size_t max_bytes = *std::max_element(sizes.begin(), sizes.end());
  SendFrame(fd, absl::StrCat("config|", c.transports, "|",
                             c.protocol == WriteProtocol::kRma ? "rma" : "rndv", "|",
                             c.peer_errors ? "1" : "0", "|", max_bytes));
  const std::string address = ReceiveFrame(fd);
  const std::string descriptor = ReceiveFrame(fd);
  uint64_t remote_base = 0;
  if (!absl::SimpleAtoi(ReceiveFrame(fd), &remote_base)) Die("bad base address");
  auto agent = UcxAgent::Create(Options(c));
  if (!agent.ok()) Die(agent.status().ToString());
  auto src = Buffer(max_bytes, 0);
  for (size_t i = 0; i < max_bytes / 8; ++i) {
    reinterpret_cast<uint64_t*>(src.get())[i] = i * 0x9e3779b97f4a7c15ull + 7;
  }
  auto copy = Buffer(max_bytes, 1);
  const char* proto = c.protocol == WriteProtocol::kRma ? "rma" : "rndv";
  for (size_t bytes : sizes) {
    std::vector<TransferSegment> segments;
    const size_t step = segment_bytes == 0 ? bytes : segment_bytes;
    for (size_t off = 0; off < bytes; off += step) {
      segments.push_back({src.get() + off, remote_base + off, std::min(step, bytes - off)});
    }
    std::vector<double> write_s, copy_s;
    for (int r = 0; r <= repeats; ++r) {  // r == 0 warms up both
      const auto t0 = Clock::now();
      const absl::Status s = (*agent)->Write(address, descriptor, segments);
      const auto t1 = Clock::now();
      if (!s.ok()) Die(absl::StrCat(c.label, " ", proto, ": ", s.ToString()));
      std::memcpy(copy.get(), src.get(), bytes);
      const auto t2 = Clock::now();
      if (r > 0) {
        write_s.push_back(std::chrono::duration<double>(t1 - t0).count());
        copy_s.push_back(std::chrono::duration<double>(t2 - t1).count());
      }
    }
    SendFrame(fd, absl::StrCat(bytes));
    const bool landed = ReceiveFrame(fd) == absl::StrCat(Checksum(src.get(), bytes));
    const Stats w = Summarize(write_s, bytes), m = Summarize(copy_s, bytes);
    std::printf(
        "| %-16s | %-4s | %4zu MB | %7zu | %6.2f / %6.2f | %6.2f / %6.2f | %5.2f / %5.2f |%s\n",
        c.label.c_str(), proto, bytes >> 20, segments.size(), w.best, w.median, m.best, m.median,
        w.best / m.best, w.median / m.median, landed ? "" : " DATA MISMATCH");
    std::fflush(stdout);
  }
  SendFrame(fd, "done");
}

std::vector<size_t> ParseList(const char* s) {
  std::vector<size_t> out;
  for (absl::string_view part : absl::StrSplit(s, ',')) {
    size_t v = 0;
    if (!absl::SimpleAtoi(part, &v) || v == 0) Die(absl::StrCat("bad list element '", part, "'"));
    out.push_back(v);
  }
  return out;
}

int Main(int argc, char** argv) {
  std::vector<size_t> sizes_mb = {1, 4, 16, 64, 256};
  int repeats = 5;
  size_t segment_kb = 0;
  std::vector<Config> configs = DefaultConfigs();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const char* v = i + 1 < argc ? argv[i + 1] : nullptr;
    if (a == "--sizes-mb" && v) {
      sizes_mb = ParseList(v);
    } else if (a == "--repeats" && v) {
      repeats = std::max(1, std::atoi(v));
    } else if (a == "--segment-kb" && v) {
      segment_kb = static_cast<size_t>(std::atoll(v));
    } else if (a == "--only" && v) {
      // Keeps the default configs whose label contains this text.
      std::erase_if(configs, [&](const Config& c) { return c.label.find(v) == std::string::npos; });
    } else {
      std::fprintf(stderr,
                   "usage: cleave_kv_transfer_bench [--sizes-mb 1,4,16,64,256] [--repeats 5] "
                   "[--segment-kb N] [--only LABEL]\n");
      return 2;
    }
    ++i;
  }
  SetLogLevel("warn");
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) Die("socketpair failed");
  // Fork before either side touches UCX: each process initializes its own.
  const pid_t child = fork();
  if (child < 0) Die("fork failed");
  if (child == 0) {
    close(fds[0]);
    TargetMain(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  std::printf("KV transfer: UcxAgent::Write into a forked process vs memcpy in this process\n");
  std::printf("GB/s as best / median of %d (after 1 warm-up); segments of %s\n", repeats,
              segment_kb == 0 ? "the whole size" : absl::StrCat(segment_kb, " KB").c_str());
  std::printf(
      "| transports       | prot | size    | segments | write GB/s      | memcpy GB/s     | ratio  "
      "       |\n");
  std::printf(
      "|------------------|------|---------|---------:|-----------------|-----------------|--------"
      "-------|\n");
  for (const Config& c : configs) RunConfig(fds[0], c, sizes_mb, repeats, segment_kb << 10);
  SendFrame(fds[0], "exit");
  int status = 0;
  waitpid(child, &status, 0);
  return 0;
}

}  // namespace
}  // namespace cleave

int main(int argc, char** argv) { return cleave::Main(argc, argv); }
