#include "engine/runtime/device_buffer.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/util/check.h"

namespace cleave {

absl::StatusOr<DeviceBuffer> DeviceBuffer::Create(Backend* backend, size_t bytes) {
  DeviceBuffer b;
  b.backend_ = backend;
  b.bytes_ = bytes;
  b.data_ = backend->Allocate(bytes == 0 ? 1 : bytes);
  if (b.data_ == nullptr) {
    b.backend_ = nullptr;
    return absl::ResourceExhaustedError(
        absl::StrCat(std::string(backend->name()), " backend: cannot allocate ", bytes, " bytes"));
  }
  return b;
}

void DeviceBuffer::Upload(const void* host, size_t bytes) {
  CHECK(bytes <= bytes_);
  backend_->CopyToDevice(data_, host, bytes);
}

void DeviceBuffer::Reset() {
  if (backend_ && data_) backend_->Free(data_);
  backend_ = nullptr;
  data_ = nullptr;
  bytes_ = 0;
}

absl::Status EnsureCapacity(Backend* backend, DeviceBuffer& buf, size_t bytes) {
  if (buf.bytes() >= bytes && buf.data() != nullptr) return absl::OkStatus();
  // Grow by half again so a slowly growing batch does not reallocate every step.
  auto grown = DeviceBuffer::Create(backend, std::max(bytes, buf.bytes() + buf.bytes() / 2));
  if (!grown.ok()) return grown.status();
  buf = std::move(*grown);
  return absl::OkStatus();
}

}  // namespace cleave
