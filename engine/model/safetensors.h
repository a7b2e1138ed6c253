// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
// an 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data section, which the offsets index.
#ifndef CLEAVE_ENGINE_MODEL_SAFETENSORS_H_
#define CLEAVE_ENGINE_MODEL_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/util/dtype.h"

namespace cleave {

// Headers above this are refused: real ones are a few hundred KB, and a corrupt length
// must not make the reader parse gigabytes as JSON.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100ull << 20;

// One tensor inside a mapped file. `data` points into the mapping, stays valid while the
// owning SafetensorsFile lives, and is aligned only as the file's offsets make it
// (read multi-byte elements with memcpy or through ConvertToF32).
struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // empty for a scalar
  const void* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
};

// Formats a shape as "[4, 128]" for messages.
std::string ShapeString(const std::vector<int64_t>& shape);

// A read-only memory mapping of one .safetensors file whose header has been validated
// completely: every tensor's bytes lie inside the data section, match dtype x shape,
// and no two tensors overlap. A file truncated after Open is outside this guarantee.
class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  // Tensor names in data-offset order (the order they lie in the file).
  const std::vector<std::string>& names() const { return names_; }
  bool Contains(std::string_view name) const { return tensors_.count(name) > 0; }
  // NOT_FOUND naming the tensor and the file when absent.
  absl::StatusOr<TensorView> Get(std::string_view name) const;
  // nullptr when absent; avoids copying the view.
  const TensorView* Find(std::string_view name) const;
  // The "__metadata__" string map (empty when the file has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  size_t file_size() const { return size_; }

 private:
  SafetensorsFile() = default;
  absl::Status ParseHeader();

  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorView, std::less<>> tensors_;
  std::vector<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

// What SafetensorsWriter needs up front for each tensor.
struct TensorSpec {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
};

// Streams a .safetensors file: the header is written first from the full tensor list, then
// each tensor's bytes arrive through Append, in list order, in chunks of any size. Nothing
// larger than one chunk is held in memory, so multi-GB files cost a few MB.
class SafetensorsWriter {
 public:
  // Creates (truncates) `path`. `metadata` becomes "__metadata__" (HF loaders expect
  // {"format": "pt"}). Tensor names must be unique and non-empty and not "__metadata__".
  static absl::StatusOr<std::unique_ptr<SafetensorsWriter>> Create(
      const std::string& path, const std::vector<TensorSpec>& tensors,
      const std::map<std::string, std::string>& metadata = {});
  // Closes the file; a writer that did not Finish leaves an incomplete file behind, which
  // the caller should remove (or write under a temporary name, as checkpoint_writer does).
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // Appends the next `nbytes` of tensor `name`, which must be the tensor being filled
  // (the first one not yet complete). A chunk may not run past the tensor's end.
  absl::Status Append(std::string_view name, const void* data, size_t nbytes);
  // Checks that every tensor is complete and closes the file. With `sync`, fsyncs first,
  // so that a rename done afterwards survives power loss, not just a killed process.
  absl::Status Finish(bool sync = false);

  // Bytes the finished file will have.
  uint64_t total_bytes() const { return header_end_ + data_bytes_; }

 private:
  SafetensorsWriter() = default;
  absl::Status WriteAll(const void* data, size_t nbytes);

  std::string path_;
  int fd_ = -1;
  std::vector<TensorSpec> tensors_;
  std::vector<uint64_t> sizes_;  // bytes per tensor
  size_t current_ = 0;           // index of the tensor being filled
  uint64_t written_in_current_ = 0;
  uint64_t header_end_ = 0;  // 8 + padded header length
  uint64_t data_bytes_ = 0;
  bool finished_ = false;
};

// Writes a whole file from in-memory tensors: each view's name, dtype, shape, data and
// nbytes. For tests and small files; large ones should stream through SafetensorsWriter.
absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorView>& tensors,
                              const std::map<std::string, std::string>& metadata = {});

}  // namespace cleave

#endif  // CLEAVE_ENGINE_MODEL_SAFETENSORS_H_
