// Writes deterministic random Mixtral checkpoints in the Hugging Face layout, for tests,
// benchmarks and `cleave make-model`.
#ifndef CLEAVE_ENGINE_MODEL_CHECKPOINT_WRITER_H_
#define CLEAVE_ENGINE_MODEL_CHECKPOINT_WRITER_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "engine/model/config.h"

namespace cleave {

inline constexpr int64_t kDefaultMaxShardBytes = int64_t{4} << 30;

// Writes into `dir` (created if needed; refused if it already holds a config.json):
//   config.json, cleave_tokenizer.json (byte tokenizer, ids = byte + 3), and either
//   model.safetensors or, when the weights exceed `max_shard_bytes`,
//   model-0000K-of-0000N.safetensors + model.safetensors.index.json.
// Weights are stored as config.torch_dtype and drawn from generators seeded by
// (seed, tensor name, block of 64Ki elements): the same seed gives byte-identical files
// whatever the thread count. Linear and router weights ~ N(0, 1/fan_in), embeddings
// ~ N(0, 1), norm weights ~ 1 + N(0, 0.01), so activations stay O(1) and routing spreads
// over the experts. Blocks are drawn by `threads` threads (0: one per core, at most 16)
// and streamed out batch by batch, so memory stays at a few MB per thread for any model
// size. Files are written under temporary names and renamed at the end, config.json
// last, so an interrupted run never leaves a directory that looks like a complete
// checkpoint.
absl::Status WriteRandomCheckpoint(const ModelConfig& config, const std::string& dir, uint64_t seed,
                                   int64_t max_shard_bytes = kDefaultMaxShardBytes,
                                   int threads = 0);

// Fills `out` with the values WriteRandomCheckpoint draws for the first out.size()
// elements of tensor `name` (before rounding to the storage dtype), with standard
// deviation `stddev` around `mean`. Exposed so tests can check the stored bytes.
void RandomNormalFill(uint64_t seed, std::string_view name, float mean, float stddev,
                      std::span<float> out);

}  // namespace cleave

#endif  // CLEAVE_ENGINE_MODEL_CHECKPOINT_WRITER_H_
