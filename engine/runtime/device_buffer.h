// RAII ownership of one backend allocation, typed views over it.
#ifndef CLEAVE_ENGINE_RUNTIME_DEVICE_BUFFER_H_
#define CLEAVE_ENGINE_RUNTIME_DEVICE_BUFFER_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "absl/status/statusor.h"
#include "engine/runtime/backend.h"

namespace cleave {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  // Fails with RESOURCE_EXHAUSTED when the backend cannot allocate `bytes`.
  static absl::StatusOr<DeviceBuffer> Create(Backend* backend, size_t bytes);
  ~DeviceBuffer() { Reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      Reset();
      backend_ = std::exchange(o.backend_, nullptr);
      data_ = std::exchange(o.data_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  float* f32() const { return static_cast<float*>(data_); }
  int32_t* i32() const { return static_cast<int32_t*>(data_); }
  size_t bytes() const { return bytes_; }

  // Copies host data in; `host` must fit.
  void Upload(const void* host, size_t bytes);
  template <typename T>
  void Upload(std::span<const T> host) { Upload(host.data(), host.size_bytes()); }

 private:
  void Reset();

  Backend* backend_ = nullptr;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

// Grows (never shrinks) `buf` to hold at least `bytes`. For per-step scratch whose
// size follows the batch: steady state allocates nothing.
absl::Status EnsureCapacity(Backend* backend, DeviceBuffer& buf, size_t bytes);

}  // namespace cleave

#endif  // CLEAVE_ENGINE_RUNTIME_DEVICE_BUFFER_H_
