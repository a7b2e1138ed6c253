// Element types of checkpoint tensors and conversions to the fp32 the CPU path computes in.
#ifndef CLEAVE_ENGINE_UTIL_DTYPE_H_
#define CLEAVE_ENGINE_UTIL_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "absl/status/statusor.h"

namespace cleave {

enum class DType { kF32, kF16, kBF16, kI32, kI64 };

size_t DTypeSize(DType t);
std::string_view DTypeName(DType t);  // the safetensors spelling: "F32", "BF16", ...
absl::StatusOr<DType> ParseSafetensorsDType(std::string_view name);
// config.json "torch_dtype": "float32" | "float16" | "bfloat16".
absl::StatusOr<DType> ParseTorchDType(std::string_view name);
std::string_view TorchDTypeName(DType t);

inline float Bf16ToF32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round-to-nearest-even, as PyTorch does; NaN stays NaN.
inline uint16_t F32ToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);  // round-to-nearest-even, saturates to inf

// Converts `n` elements of type `src_type` at `src` into fp32 at `dst`.
void ConvertToF32(DType src_type, const void* src, size_t n, float* dst);
// Converts `n` fp32 values into `dst_type` at `dst` (F32, F16 or BF16).
void ConvertFromF32(const float* src, size_t n, DType dst_type, void* dst);

}  // namespace cleave

#endif  // CLEAVE_ENGINE_UTIL_DTYPE_H_
