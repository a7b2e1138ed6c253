// Shared fixtures for tests that need a real checkpoint and engine: a tiny
// random checkpoint written once per process into a temporary directory.
#ifndef CLEAVE_TESTS_SUPPORT_TEST_MODEL_H_
#define CLEAVE_TESTS_SUPPORT_TEST_MODEL_H_

#include <memory>
#include <string>

#include "engine/core/engine_core.h"
#include "engine/model/config.h"
#include "engine/runtime/backend.h"

namespace cleave::testing {

// A fresh temporary directory under /tmp (removed at process exit).
std::string MakeTempDir(const std::string& tag);

// The tiny preset written with `dtype` and `seed`; cached per (dtype, seed, preset).
std::string TinyCheckpoint(DType dtype = DType::kBF16, uint64_t seed = 1,
                           const std::string& preset = "tiny");

// The process-wide CPU backend.
Backend* CpuBackend();

// An engine over the checkpoint at `dir`.
std::unique_ptr<EngineCore> MakeEngine(const std::string& dir, const EngineConfig& config);

}  // namespace cleave::testing

#endif  // CLEAVE_TESTS_SUPPORT_TEST_MODEL_H_
