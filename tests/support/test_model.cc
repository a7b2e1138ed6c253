#include "tests/support/test_model.h"

#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "engine/model/checkpoint.h"
#include "engine/model/checkpoint_writer.h"
#include "engine/model/presets.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/util/check.h"

namespace cleave::testing {
namespace {

std::mutex mu;
std::vector<std::string>* temp_dirs = nullptr;

void RemoveTempDirs() {
  for (const std::string& d : *temp_dirs) {
    std::error_code ec;
    std::filesystem::remove_all(d, ec);
  }
}

}  // namespace

std::string MakeTempDir(const std::string& tag) {
  std::lock_guard<std::mutex> lock(mu);
  std::string tmpl = "/tmp/cleave-" + tag + "-XXXXXX";
  CHECK(mkdtemp(tmpl.data()) != nullptr);
  if (temp_dirs == nullptr) {
    temp_dirs = new std::vector<std::string>();
    std::atexit(RemoveTempDirs);
  }
  temp_dirs->push_back(tmpl);
  return tmpl;
}

std::string TinyCheckpoint(DType dtype, uint64_t seed, const std::string& preset) {
  static std::map<std::tuple<int, uint64_t, std::string>, std::string>* cache =
      new std::map<std::tuple<int, uint64_t, std::string>, std::string>();
  const auto key = std::make_tuple(static_cast<int>(dtype), seed, preset);
  {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = cache->find(key); it != cache->end()) return it->second;
  }
  const std::string dir = MakeTempDir("model") + "/" + preset;
  auto config = PresetConfig(preset);
  CHECK(config.ok());
  config->torch_dtype = dtype;
  absl::Status st = WriteRandomCheckpoint(*config, dir, seed, int64_t{4} << 30);
  if (!st.ok()) {
    std::fprintf(stderr, "writing %s: %s\n", dir.c_str(), st.ToString().c_str());
    std::abort();
  }
  std::lock_guard<std::mutex> lock(mu);
  (*cache)[key] = dir;
  return dir;
}

Backend* CpuBackend() {
  static Backend* backend = MakeCpuBackend().release();
  return backend;
}

std::unique_ptr<EngineCore> MakeEngine(const std::string& dir, const EngineConfig& config) {
  auto checkpoint = Checkpoint::Open(dir);
  CHECK(checkpoint.ok());
  auto model = MixtralModel::Load(**checkpoint, CpuBackend());
  CHECK(model.ok());
  auto tokenizer = LoadTokenizer(dir);
  CHECK(tokenizer.ok());
  auto engine = EngineCore::Create(std::move(*model), std::move(*tokenizer), config);
  CHECK(engine.ok());
  return std::move(*engine);
}

}  // namespace cleave::testing
