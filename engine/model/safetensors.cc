#include "engine/model/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/util/status.h"
#include "nlohmann/json.hpp"

namespace cleave {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kMetadataKey = "__metadata__";

std::string ErrnoString(int err) { return std::strerror(err); }

// A non-negative integer that fits in int64 (safetensors sizes and offsets), or an error
// message describing what `v` is instead.
bool ReadNonNegative(const Json& v, uint64_t* out) {
  if (!v.is_number_integer()) return false;
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
  } else {
    const int64_t s = v.get<int64_t>();
    if (s < 0) return false;
    *out = static_cast<uint64_t>(s);
  }
  return *out <= static_cast<uint64_t>(INT64_MAX);
}

}  // namespace

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string msg = absl::StrCat(path, ": cannot open: ", ErrnoString(err));
    return err == ENOENT ? absl::NotFoundError(msg) : absl::PermissionDeniedError(msg);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat(path, ": fstat: ", ErrnoString(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": truncated: ", size, " bytes, shorter than the 8-byte header length"));
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_err = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) {
    return absl::ResourceExhaustedError(absl::StrCat(path, ": mmap: ", ErrnoString(map_err)));
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->map_ = map;
  file->size_ = size;
  absl::Status st_header = file->ParseHeader();
  if (!st_header.ok()) {
    return absl::Status(st_header.code(), absl::StrCat(path, ": ", st_header.message()));
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_ != nullptr) ::munmap(map_, size_);
}

absl::Status SafetensorsFile::ParseHeader() {
  const auto* bytes = static_cast<const unsigned char*>(map_);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[i];
  if (header_len > kMaxSafetensorsHeaderBytes) {
    return absl::InvalidArgumentError(absl::StrCat("header length ", header_len,
                                                   " exceeds the limit of ",
                                                   kMaxSafetensorsHeaderBytes, " bytes"));
  }
  if (header_len > size_ - 8) {
    return absl::InvalidArgumentError(absl::StrCat("truncated: header length ", header_len,
                                                   " runs past the end of the file (", size_,
                                                   " bytes)"));
  }
  if (header_len == 0) return absl::InvalidArgumentError("empty header");
  const char* header = reinterpret_cast<const char*>(bytes + 8);
  Json j;
  try {
    j = Json::parse(header, header + header_len);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed header JSON: ", e.what()));
  }
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("header is a JSON ", j.type_name(), ", want an object"));
  }
  const uint64_t data_size = size_ - 8 - header_len;
  const unsigned char* data = bytes + 8 + header_len;

  for (const auto& [name, entry] : j.items()) {
    if (name == kMetadataKey) {
      if (!entry.is_object()) return absl::InvalidArgumentError("__metadata__ is not an object");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) {
          return absl::InvalidArgumentError(
              absl::StrCat("__metadata__ key '", k, "' is not a string"));
        }
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    auto bad = [&name](const std::string& what) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "': ", what));
    };
    if (!entry.is_object()) return bad("entry is not an object");
    auto dt = entry.find("dtype");
    if (dt == entry.end() || !dt->is_string()) return bad("missing or non-string dtype");
    auto dtype = ParseSafetensorsDType(dt->get<std::string>());
    if (!dtype.ok()) return bad(std::string(dtype.status().message()));

    auto sh = entry.find("shape");
    if (sh == entry.end() || !sh->is_array()) return bad("missing or non-list shape");
    TensorView view;
    view.name = name;
    view.dtype = *dtype;
    uint64_t numel = 1;
    bool overflow = false;
    for (const Json& d : *sh) {
      uint64_t dim;
      if (!ReadNonNegative(d, &dim)) {
        return bad(absl::StrCat("shape ", sh->dump(), " has an entry that is not a ",
                                "non-negative integer"));
      }
      view.shape.push_back(static_cast<int64_t>(dim));
      overflow = overflow || __builtin_mul_overflow(numel, dim, &numel);
    }
    uint64_t nbytes = 0;
    overflow = overflow || __builtin_mul_overflow(numel, DTypeSize(*dtype), &nbytes);
    if (overflow) return bad(absl::StrCat("shape ", sh->dump(), " overflows 64 bits"));

    auto off = entry.find("data_offsets");
    uint64_t begin = 0, end = 0;
    if (off == entry.end() || !off->is_array() || off->size() != 2 ||
        !ReadNonNegative((*off)[0], &begin) || !ReadNonNegative((*off)[1], &end)) {
      return bad("data_offsets must be a list of two non-negative integers");
    }
    if (begin > end || end > data_size) {
      return bad(absl::StrCat("data_offsets [", begin, ", ", end,
                              "] out of bounds of the data section (", data_size, " bytes)"));
    }
    if (end - begin != nbytes) {
      return bad(absl::StrCat("data_offsets span ", end - begin, " bytes but ",
                              std::string(DTypeName(*dtype)), " ", ShapeString(view.shape),
                              " needs ", nbytes));
    }
    view.data = data + begin;
    view.nbytes = static_cast<size_t>(nbytes);
    tensors_.emplace(name, std::move(view));
  }

  // Overlap check: walk tensors by begin offset; each non-empty one must start at or after
  // the furthest end seen so far.
  struct Span {
    uint64_t begin, end;
    const std::string* name;
  };
  std::vector<Span> spans;
  const unsigned char* base = data;
  for (const auto& [name, view] : tensors_) {
    const uint64_t b = static_cast<const unsigned char*>(view.data) - base;
    spans.push_back({b, b + view.nbytes, &name});
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.begin != b.begin ? a.begin < b.begin : *a.name < *b.name;
  });
  const Span* furthest = nullptr;
  for (const Span& s : spans) {
    names_.push_back(*s.name);
    if (s.begin == s.end) continue;
    if (furthest != nullptr && s.begin < furthest->end) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", *s.name, "' (bytes [", s.begin, ", ", s.end, ")) overlaps tensor '",
          *furthest->name, "' (bytes [", furthest->begin, ", ", furthest->end, "))"));
    }
    if (furthest == nullptr || s.end > furthest->end) furthest = &s;
  }
  return absl::OkStatus();
}

absl::StatusOr<TensorView> SafetensorsFile::Get(std::string_view name) const {
  const TensorView* v = Find(name);
  if (v == nullptr) {
    return absl::NotFoundError(absl::StrCat(path_, ": no tensor '", std::string(name), "'"));
  }
  return *v;
}

const TensorView* SafetensorsFile::Find(std::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------------------
// Writer

absl::StatusOr<std::unique_ptr<SafetensorsWriter>> SafetensorsWriter::Create(
    const std::string& path, const std::vector<TensorSpec>& tensors,
    const std::map<std::string, std::string>& metadata) {
  std::unique_ptr<SafetensorsWriter> w(new SafetensorsWriter());
  w->path_ = path;
  w->tensors_ = tensors;
  Json header = Json::object();
  std::set<std::string_view> seen;
  uint64_t offset = 0;
  for (const TensorSpec& t : tensors) {
    if (t.name.empty() || t.name == kMetadataKey || !seen.insert(t.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor name '", t.name, "' is empty, reserved or repeated"));
    }
    uint64_t n = DTypeSize(t.dtype);
    bool overflow = false;
    for (int64_t d : t.shape) {
      if (d < 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": tensor '", t.name, "' has negative shape ", ShapeString(t.shape)));
      }
      overflow = overflow || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n);
    }
    if (overflow || n > static_cast<uint64_t>(INT64_MAX) - offset) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", t.name, "' is too large"));
    }
    w->sizes_.push_back(n);
    header[t.name] = {{"dtype", std::string(DTypeName(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  if (!metadata.empty()) header[std::string(kMetadataKey)] = metadata;
  w->data_bytes_ = offset;

  std::string text;
  try {
    text = header.dump();
  } catch (const Json::exception& e) {  // a name that is not valid UTF-8
    return absl::InvalidArgumentError(absl::StrCat(path, ": header: ", e.what()));
  }
  // Spaces up to 8-byte alignment of the data section, as the HF writer pads.
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');
  w->header_end_ = 8 + text.size();

  w->fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w->fd_ < 0) {
    return absl::PermissionDeniedError(absl::StrCat(path, ": cannot create: ", ErrnoString(errno)));
  }
  unsigned char len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i, n >>= 8) len[i] = static_cast<unsigned char>(n & 0xff);
  RETURN_IF_ERROR(w->WriteAll(len, 8));
  RETURN_IF_ERROR(w->WriteAll(text.data(), text.size()));
  // Skip leading empty tensors so current_ always names one still owed bytes.
  while (w->current_ < w->sizes_.size() && w->sizes_[w->current_] == 0) ++w->current_;
  return w;
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status SafetensorsWriter::WriteAll(const void* data, size_t nbytes) {
  const char* p = static_cast<const char*>(data);
  while (nbytes > 0) {
    const ssize_t n = ::write(fd_, p, nbytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::DataLossError(absl::StrCat(path_, ": write failed: ", ErrnoString(errno)));
    }
    p += n;
    nbytes -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Append(std::string_view name, const void* data, size_t nbytes) {
  if (finished_ || fd_ < 0) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": Append after Finish"));
  }
  if (current_ == tensors_.size()) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": Append to '", std::string(name),
                                                      "' but every tensor is already complete"));
  }
  const TensorSpec& t = tensors_[current_];
  if (name != t.name) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": Append to '", std::string(name),
                                                      "' but the tensor being filled is '", t.name,
                                                      "'"));
  }
  if (nbytes > sizes_[current_] - written_in_current_) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": tensor '", std::string(name), "': chunk of ", nbytes,
                     " bytes runs past its end (", written_in_current_, " of ", sizes_[current_],
                     " bytes written)"));
  }
  RETURN_IF_ERROR(WriteAll(data, nbytes));
  written_in_current_ += nbytes;
  while (current_ < tensors_.size() && written_in_current_ == sizes_[current_]) {
    ++current_;
    written_in_current_ = 0;
  }
  return absl::OkStatus();
}

absl::Status SafetensorsWriter::Finish(bool sync) {
  if (finished_ || fd_ < 0)
    return absl::FailedPreconditionError(absl::StrCat(path_, ": Finish twice"));
  if (current_ < tensors_.size()) {
    return absl::FailedPreconditionError(absl::StrCat(path_, ": tensor '", tensors_[current_].name,
                                                      "' has ", written_in_current_, " of ",
                                                      sizes_[current_], " bytes"));
  }
  finished_ = true;
  if (sync && ::fsync(fd_) != 0) {
    return absl::DataLossError(absl::StrCat(path_, ": fsync: ", ErrnoString(errno)));
  }
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    return absl::DataLossError(absl::StrCat(path_, ": close: ", ErrnoString(errno)));
  }
  return absl::OkStatus();
}

absl::Status WriteSafetensors(const std::string& path, const std::vector<TensorView>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  for (const TensorView& t : tensors) specs.push_back({t.name, t.dtype, t.shape});
  ASSIGN_OR_RETURN(auto writer, SafetensorsWriter::Create(path, specs, metadata));
  for (const TensorView& t : tensors) {
    if (t.nbytes == 0) continue;
    RETURN_IF_ERROR(writer->Append(t.name, t.data, t.nbytes));
  }
  return writer->Finish();
}

}  // namespace cleave
