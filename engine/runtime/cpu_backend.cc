// The CPU backend: host memory, kernels/cpu. Copies are memcpy; ops run synchronously.
#include <cblas.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "cleave/kernels/cpu.h"
#include "engine/runtime/backend.h"
#include "engine/util/log.h"

namespace cleave {
namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend() {
    kernels::cpu::Init();
    LOG_DEBUG("cpu backend: OpenBLAS {} kernels, {} threads", openblas_get_corename(),
              kernels::cpu::NumThreads());
  }

  std::string_view name() const override { return "cpu"; }
  DeviceKind device() const override { return DeviceKind::kCpu; }

  void* Allocate(size_t bytes) override {
    // 64-byte alignment: whole cache lines for the BLAS kernels.
    return std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  }
  void Free(void* ptr) override { std::free(ptr); }
  void CopyToDevice(void* dst, const void* src, size_t bytes) override {
    if (dst != src) std::memcpy(dst, src, bytes);
  }
  void CopyToHost(void* dst, const void* src, size_t bytes) override {
    if (dst != src) std::memcpy(dst, src, bytes);
  }
  void Memset(void* dst, int value, size_t bytes) override { std::memset(dst, value, bytes); }
  void Synchronize() override {}

  void Gemm(const kernels::GemmParams& p) override { kernels::cpu::Gemm(p); }
  void RmsNorm(const kernels::RmsNormParams& p) override { kernels::cpu::RmsNorm(p); }
  void Rope(const kernels::RopeParams& p) override { kernels::cpu::Rope(p); }
  void StoreKv(const kernels::StoreKvParams& p) override { kernels::cpu::StoreKv(p); }
  void PagedAttention(const kernels::PagedAttentionParams& p) override {
    kernels::cpu::PagedAttention(p);
  }
  void SiluMul(const kernels::SiluMulParams& p) override { kernels::cpu::SiluMul(p); }
  void RouterTopK(const kernels::RouterTopKParams& p) override { kernels::cpu::RouterTopK(p); }
  void Embedding(const kernels::EmbeddingParams& p) override { kernels::cpu::Embedding(p); }
  void GatherRows(const kernels::GatherRowsParams& p) override { kernels::cpu::GatherRows(p); }
  void ScatterAddRows(const kernels::ScatterAddRowsParams& p) override {
    kernels::cpu::ScatterAddRows(p);
  }
  void Add(const kernels::AddParams& p) override { kernels::cpu::Add(p); }
};

}  // namespace

std::unique_ptr<Backend> MakeCpuBackend() { return std::make_unique<CpuBackend>(); }

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(std::string_view name) {
  if (name == "cpu") return MakeCpuBackend();
  if (name == "cuda") {
    return absl::UnimplementedError(
        "backend 'cuda': this build's engine runs on the CPU backend only; use --backend cpu");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown backend '", std::string(name), "' (want cpu)"));
}

}  // namespace cleave
