#include "engine/model/checkpoint_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <numbers>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/model/checkpoint.h"
#include "engine/model/safetensors.h"
#include "engine/util/status.h"
#include "nlohmann/json.hpp"

namespace cleave {
namespace {

namespace fs = std::filesystem;

constexpr char kPartialSuffix[] = ".partial";
// Values come in blocks with independent generators, so blocks can be drawn in parallel
// and the bytes do not depend on the thread count.
constexpr size_t kBlockElems = size_t{1} << 16;
// Blocks in flight per thread: bounds memory at ~0.8 MB per thread (bf16).
constexpr int kBlocksPerThread = 2;
constexpr int kMaxThreads = 16;
// The byte tokenizer's layout: <unk>=0 (also padding), <s>=1, </s>=2, byte b = b + 3.
constexpr int kByteOffset = 3;
constexpr int kByteTokenizerVocab = kByteOffset + 256;

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t Fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// xoshiro256** seeded through splitmix64 from (seed, tensor name, block index), so each
// value depends only on those, not on write order, sharding or threading.
class NormalStream {
 public:
  NormalStream(uint64_t seed, std::string_view name, uint64_t block) {
    uint64_t sm = seed;
    uint64_t state = SplitMix64(sm) ^ Fnv1a(name) ^ (block * 0xd1b54a32d192ed03ull);
    for (uint64_t& w : s_) w = SplitMix64(state);
  }

  // Standard normal by Box-Muller; both values of each pair are used.
  double Next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = static_cast<double>((NextU64() >> 11) + 1) * 0x1p-53;  // (0, 1]
    const double u2 = static_cast<double>(NextU64() >> 11) * 0x1p-53;        // [0, 1)
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double a = 2.0 * std::numbers::pi * u2;
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t NextU64() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  uint64_t s_[4];
  bool has_spare_ = false;
  double spare_ = 0.0;
};

struct Init {
  float mean, stddev;
};

Init InitFor(const RequiredTensor& t) {
  switch (t.role) {
    case TensorRole::kEmbedding:
      return {0.0f, 1.0f};
    case TensorRole::kNorm:
      return {1.0f, 0.1f};
    case TensorRole::kLinear:
      break;
  }
  return {0.0f, static_cast<float>(1.0 / std::sqrt(static_cast<double>(t.shape[1])))};
}

std::string ErrnoString(int err) { return std::strerror(err); }

// Writes a small file completely. No fsync here or for the shards: temp names plus rename
// already protect against a killed process, the case that matters for make-model, and
// random weights lost to a power cut are cheap to regenerate (fsync cost seconds per file
// on a busy disk).
absl::Status WriteSmallFile(const std::string& path, std::string_view content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::PermissionDeniedError(absl::StrCat(path, ": cannot create: ", ErrnoString(errno)));
  }
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return absl::DataLossError(absl::StrCat(path, ": write failed: ", ErrnoString(err)));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    return absl::DataLossError(absl::StrCat(path, ": close: ", ErrnoString(errno)));
  }
  return absl::OkStatus();
}

void FillBlock(uint64_t seed, std::string_view name, uint64_t block, Init init, float* out,
               size_t n) {
  NormalStream stream(seed, name, block);
  for (size_t i = 0; i < n; ++i)
    out[i] = static_cast<float>(init.mean + init.stddev * stream.Next());
}

int WorkerThreads() {
  return std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, kMaxThreads);
}

// Draws tensor `t` batch by batch: the threads fill disjoint blocks of a batch, then the
// batch is appended in order. Memory is one batch, however large the tensor.
absl::Status StreamTensor(SafetensorsWriter& writer, const RequiredTensor& t, DType dtype,
                          uint64_t seed, int max_threads) {
  uint64_t numel = 1;
  for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
  const Init init = InitFor(t);
  const size_t esize = DTypeSize(dtype);
  const uint64_t blocks = (numel + kBlockElems - 1) / kBlockElems;
  const int threads =
      static_cast<int>(std::min<uint64_t>(max_threads, std::max<uint64_t>(blocks, 1)));
  const uint64_t batch = static_cast<uint64_t>(threads) * kBlocksPerThread;
  std::vector<unsigned char> bytes(std::min(batch, std::max<uint64_t>(blocks, 1)) * kBlockElems *
                                   esize);
  std::vector<std::vector<float>> scratch(threads, std::vector<float>(kBlockElems));
  for (uint64_t b0 = 0; b0 < blocks; b0 += batch) {
    const uint64_t nb = std::min(batch, blocks - b0);
    auto work = [&](int tid) {
      for (uint64_t i = tid; i < nb; i += threads) {
        const uint64_t first = (b0 + i) * kBlockElems;
        const size_t n = static_cast<size_t>(std::min<uint64_t>(kBlockElems, numel - first));
        FillBlock(seed, t.name, b0 + i, init, scratch[tid].data(), n);
        ConvertFromF32(scratch[tid].data(), n, dtype, bytes.data() + i * kBlockElems * esize);
      }
    };
    std::vector<std::thread> pool;
    int inline_from = 1;
    for (int tid = 1; tid < threads && nb > 1; ++tid) {
      try {
        pool.emplace_back(work, tid);
        inline_from = tid + 1;
      } catch (const std::system_error&) {  // no thread to be had: do the rest here
        break;
      }
    }
    work(0);
    for (int tid = inline_from; tid < threads; ++tid) work(tid);
    for (std::thread& th : pool) th.join();
    const uint64_t done = b0 * kBlockElems;
    const uint64_t n = std::min<uint64_t>(nb * kBlockElems, numel - done);
    RETURN_IF_ERROR(writer.Append(t.name, bytes.data(), n * esize));
  }
  return absl::OkStatus();
}

struct Shard {
  std::string file_name;
  std::vector<size_t> tensors;  // indices into the tensor list
};

// Greedy split in checkpoint order: a shard closes when the next tensor would take it past
// `max_bytes` (a single tensor larger than that gets a shard of its own).
std::vector<Shard> PlanShards(const std::vector<RequiredTensor>& tensors,
                              const std::vector<uint64_t>& sizes, uint64_t max_bytes) {
  uint64_t total = 0;
  for (uint64_t s : sizes) total += s;
  std::vector<Shard> shards;
  if (total <= max_bytes) {
    Shard s{std::string(kSingleWeightsFile), {}};
    for (size_t i = 0; i < tensors.size(); ++i) s.tensors.push_back(i);
    shards.push_back(std::move(s));
    return shards;
  }
  uint64_t in_shard = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (shards.empty() || (!shards.back().tensors.empty() && in_shard + sizes[i] > max_bytes)) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().tensors.push_back(i);
    in_shard += sizes[i];
  }
  for (size_t k = 0; k < shards.size(); ++k) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", k + 1, shards.size());
    shards[k].file_name = name;
  }
  return shards;
}

absl::Status CheckWritable(const ModelConfig& config, const std::string& dir,
                           int64_t max_shard_bytes) {
  if (max_shard_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_shard_bytes must be positive, got ", max_shard_bytes));
  }
  // Round-trip through config.json so we never write a checkpoint we would refuse to load.
  auto reparsed = ParseModelConfig(ModelConfigToJson(config));
  if (!reparsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("model config: ", reparsed.status().message()));
  }
  if (config.torch_dtype != DType::kF32 && config.torch_dtype != DType::kF16 &&
      config.torch_dtype != DType::kBF16) {
    return absl::InvalidArgumentError("model config: torch_dtype must be F32, F16 or BF16");
  }
  if (config.bos_token_id != 1 || config.eos_token_id != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model config: the byte tokenizer fixes bos_token_id=1 and eos_token_id=2, got ",
        config.bos_token_id, " and ", config.eos_token_id));
  }
  if (config.vocab_size < kByteTokenizerVocab) {
    return absl::InvalidArgumentError(absl::StrCat("model config: vocab_size ", config.vocab_size,
                                                   " is below the byte tokenizer's ",
                                                   kByteTokenizerVocab, " ids"));
  }
  std::error_code ec;
  for (const char* f : {kConfigFile, kSingleWeightsFile, kWeightsIndexFile}) {
    if (fs::exists(fs::path(dir) / f, ec)) {
      return absl::AlreadyExistsError(
          absl::StrCat(dir, ": already holds ", f, "; refusing to overwrite a checkpoint"));
    }
  }
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    return absl::PermissionDeniedError(
        absl::StrCat(dir, ": cannot create directory: ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace

void RandomNormalFill(uint64_t seed, std::string_view name, float mean, float stddev,
                      std::span<float> out) {
  for (size_t first = 0, block = 0; first < out.size(); first += kBlockElems, ++block) {
    FillBlock(seed, name, block, {mean, stddev}, out.data() + first,
              std::min(kBlockElems, out.size() - first));
  }
}

absl::Status WriteRandomCheckpoint(const ModelConfig& config, const std::string& dir, uint64_t seed,
                                   int64_t max_shard_bytes, int threads) {
  RETURN_IF_ERROR(CheckWritable(config, dir, max_shard_bytes));
  const DType dtype = config.torch_dtype;
  threads = threads <= 0 ? WorkerThreads() : std::min(threads, kMaxThreads);
  const std::vector<RequiredTensor> tensors = MixtralTensors(config);
  std::vector<uint64_t> sizes;
  for (const RequiredTensor& t : tensors) {
    uint64_t n = DTypeSize(dtype);
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    sizes.push_back(n);
  }
  const std::vector<Shard> shards =
      PlanShards(tensors, sizes, static_cast<uint64_t>(max_shard_bytes));

  // Every file goes to <name>.partial first; on failure the partials are removed.
  std::vector<std::string> finals;
  auto partial = [&dir](const std::string& name) {
    return (fs::path(dir) / absl::StrCat(name, kPartialSuffix)).string();
  };
  auto write_all = [&]() -> absl::Status {
    const std::map<std::string, std::string> metadata = {{"format", "pt"}};
    for (const Shard& shard : shards) {
      std::vector<TensorSpec> specs;
      for (size_t i : shard.tensors) specs.push_back({tensors[i].name, dtype, tensors[i].shape});
      finals.push_back(shard.file_name);
      ASSIGN_OR_RETURN(auto writer,
                       SafetensorsWriter::Create(partial(shard.file_name), specs, metadata));
      for (size_t i : shard.tensors) {
        RETURN_IF_ERROR(StreamTensor(*writer, tensors[i], dtype, seed, threads));
      }
      RETURN_IF_ERROR(writer->Finish());
    }
    if (shards.size() > 1) {
      nlohmann::ordered_json index;
      uint64_t total = 0;
      for (uint64_t s : sizes) total += s;
      index["metadata"] = {{"total_size", total}};
      nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
      for (const Shard& shard : shards) {
        for (size_t i : shard.tensors) weight_map[tensors[i].name] = shard.file_name;
      }
      index["weight_map"] = std::move(weight_map);
      finals.push_back(std::string(kWeightsIndexFile));
      RETURN_IF_ERROR(WriteSmallFile(partial(kWeightsIndexFile), index.dump(2) + "\n"));
    }
    finals.push_back(std::string(kByteTokenizerFile));
    RETURN_IF_ERROR(
        WriteSmallFile(partial(kByteTokenizerFile),
                       absl::StrCat("{\"type\": \"byte\", \"offset\": ", kByteOffset,
                                    ", \"pad_id\": 0, \"bos_id\": ", config.bos_token_id,
                                    ", \"eos_id\": ", config.eos_token_id, "}\n")));
    // config.json is what makes the directory a checkpoint, so it is renamed last.
    finals.push_back(std::string(kConfigFile));
    RETURN_IF_ERROR(WriteSmallFile(partial(kConfigFile), ModelConfigToJson(config)));
    for (const std::string& f : finals) {
      std::error_code ec;
      fs::rename(partial(f), fs::path(dir) / f, ec);
      if (ec) {
        return absl::DataLossError(absl::StrCat(dir, ": renaming ", f, ": ", ec.message()));
      }
    }
    return absl::OkStatus();
  };
  absl::Status st = write_all();
  if (!st.ok()) {
    std::error_code ec;
    for (const std::string& f : finals) fs::remove(partial(f), ec);
  }
  return st;
}

}  // namespace cleave
