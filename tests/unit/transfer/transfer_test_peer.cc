// The target process of the transfer tests: owns a KvStorage filled with a known pattern,
// registers it with a UcxAgent, and answers commands on stdin with frames on stdout.
//   argv: transports num_layers num_blocks block_size num_kv_heads head_dim seed
//   out:  address frame, descriptor frame
//   in:   "dump" -> one frame per region (K0, V0, K1, ...) with its bytes; "quit" -> exit 0;
//         "write", address, descriptor -> writes its K0 array over region 0 of that descriptor
//         again and again, answering "written" after each success, until "quit" or killed
// Exits when stdin closes, so a dying test never leaves it behind.
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/time/time.h"
#include "engine/runtime/backend.h"
#include "engine/runtime/kv_storage.h"
#include "engine/transfer/kv_block_layout.h"
#include "engine/transfer/ucx_agent.h"
#include "tests/unit/transfer/transfer_test_util.h"

namespace cleave::transfer_test {
namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "transfer_test_peer: %s\n", what.c_str());
  return 1;
}

int Main(int argc, char** argv) {
  if (argc != 8) return Fail("usage: transports L blocks block_size heads head_dim seed");
  UcxAgentOptions options;
  options.transports = std::string(argv[1]) == "-" ? "" : argv[1];
  options.name = "transfer_test_peer";
  KvStorageShape shape;
  shape.num_layers = std::atoi(argv[2]);
  shape.num_blocks = std::atoi(argv[3]);
  shape.block_size = std::atoi(argv[4]);
  shape.num_kv_heads = std::atoi(argv[5]);
  shape.head_dim = std::atoi(argv[6]);
  const uint64_t seed = std::strtoull(argv[7], nullptr, 10);
  // Frames go to the original stdout; anything else printing to stdout (logging) goes to
  // stderr so it cannot corrupt them.
  const int frames = dup(STDOUT_FILENO);
  if (frames < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) return Fail("cannot set up stdout");

  std::unique_ptr<Backend> backend = MakeCpuBackend();
  absl::StatusOr<KvStorage> kv = KvStorage::Create(backend.get(), shape);
  if (!kv.ok()) return Fail(kv.status().ToString());
  FillKvStorage(*kv, seed);
  auto agent = UcxAgent::Create(options);
  if (!agent.ok()) return Fail(agent.status().ToString());
  const std::vector<MemoryRegion> regions = KvStorageRegions(*kv);
  absl::StatusOr<std::string> descriptor = (*agent)->RegisterMemory(regions);
  if (!descriptor.ok()) return Fail(descriptor.status().ToString());
  if (!WriteFrame(frames, (*agent)->address()) || !WriteFrame(frames, *descriptor)) {
    return Fail("cannot write to stdout");
  }
  while (true) {
    absl::StatusOr<std::string> command = ReadFrame(STDIN_FILENO, absl::InfiniteDuration());
    if (!command.ok() || *command == "quit") return 0;
    if (*command == "dump") {
      for (const MemoryRegion& r : regions) {
        if (!WriteFrame(frames, std::string(static_cast<const char*>(r.base), r.length))) {
          return Fail("cannot write to stdout");
        }
      }
    } else if (*command == "write") {
      absl::StatusOr<std::string> address = ReadFrame(STDIN_FILENO, absl::Seconds(20));
      absl::StatusOr<std::string> remote = ReadFrame(STDIN_FILENO, absl::Seconds(20));
      if (!address.ok() || !remote.ok()) return Fail("write needs an address and a descriptor");
      auto view = RemoteKvPoolView(shape, *remote);
      if (!view.ok()) return Fail(view.status().ToString());
      const TransferSegment all = {regions[0].base, view->k_base[0], regions[0].length};
      while (true) {
        const absl::Status s = (*agent)->Write(*address, *remote, {&all, 1}, absl::Seconds(20));
        if (!WriteFrame(frames, s.ok() ? "written" : s.ToString())) return 1;
        pollfd pfd{STDIN_FILENO, POLLIN, 0};
        if (poll(&pfd, 1, 0) > 0) break;  // "quit" (or the test went away)
      }
      return 0;
    } else {
      return Fail("unknown command " + *command);
    }
  }
}

}  // namespace
}  // namespace cleave::transfer_test

int main(int argc, char** argv) { return cleave::transfer_test::Main(argc, argv); }
