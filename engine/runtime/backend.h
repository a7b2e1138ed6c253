// The backend seam: where tensors live and which kernels run on them. The model
// calls only this interface; the CPU backend (kernels/cpu, OpenBLAS) is here now,
// a CUDA backend (kernels/cuda, cuBLAS) plugs in behind the same calls.
#ifndef CLEAVE_ENGINE_RUNTIME_BACKEND_H_
#define CLEAVE_ENGINE_RUNTIME_BACKEND_H_

#include <cstddef>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "cleave/kernels/ops.h"

namespace cleave {

enum class DeviceKind { kCpu, kCuda };

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;
  virtual DeviceKind device() const = 0;

  // Device memory. Allocate returns nullptr when the device is out of memory.
  virtual void* Allocate(size_t bytes) = 0;
  virtual void Free(void* ptr) = 0;
  virtual void CopyToDevice(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void CopyToHost(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void Memset(void* dst, int value, size_t bytes) = 0;
  // Waits until every op issued so far has finished.
  virtual void Synchronize() = 0;

  // Ops (see kernels/include/cleave/kernels/ops.h for shapes). Pointers are device pointers.
  virtual void Gemm(const kernels::GemmParams& p) = 0;
  virtual void RmsNorm(const kernels::RmsNormParams& p) = 0;
  virtual void Rope(const kernels::RopeParams& p) = 0;
  virtual void StoreKv(const kernels::StoreKvParams& p) = 0;
  virtual void PagedAttention(const kernels::PagedAttentionParams& p) = 0;
  virtual void SiluMul(const kernels::SiluMulParams& p) = 0;
  virtual void RouterTopK(const kernels::RouterTopKParams& p) = 0;
  virtual void Embedding(const kernels::EmbeddingParams& p) = 0;
  virtual void GatherRows(const kernels::GatherRowsParams& p) = 0;
  virtual void ScatterAddRows(const kernels::ScatterAddRowsParams& p) = 0;
  virtual void Add(const kernels::AddParams& p) = 0;
};

std::unique_ptr<Backend> MakeCpuBackend();
// "cpu" (and later "cuda"); a clear error for anything else or an unavailable device.
absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(std::string_view name);

}  // namespace cleave

#endif  // CLEAVE_ENGINE_RUNTIME_BACKEND_H_
