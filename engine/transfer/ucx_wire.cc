#include "engine/transfer/ucx_wire.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace cleave::ucx_wire {
namespace {

constexpr uint32_t kAddressMagic = 0x41564c43;     // "CLVA"
constexpr uint32_t kDescriptorMagic = 0x44564c43;  // "CLVD"
constexpr uint32_t kAmMagic = 0x4d564c43;          // "CLVM"
constexpr uint32_t kFenceReplyMagic = 0x52564c43;  // "CLVR"
constexpr uint16_t kVersion = 1;
// Bounds that no honest encoder reaches; they keep a corrupted count from driving allocation.
constexpr uint32_t kMaxWorkerAddressBytes = 1 << 20;
constexpr uint32_t kMaxRegions = 1 << 16;
constexpr uint32_t kMaxRkeyBytes = 1 << 16;

class Writer {
 public:
  void U16(uint16_t v) { Le(v, 2); }
  void U32(uint32_t v) { Le(v, 4); }
  void U64(uint64_t v) { Le(v, 8); }
  void Bytes(std::string_view b) {
    U32(static_cast<uint32_t>(b.size()));
    out_.append(b);
  }
  // Appends the checksum of everything written so far and returns the result.
  std::string Seal() && {
    U64(Fnv1a64(out_));
    return std::move(out_);
  }
  std::string& str() { return out_; }

 private:
  void Le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool U16(uint16_t* v) { return Le(v, 2); }
  bool U32(uint32_t* v) { return Le(v, 4); }
  bool U64(uint64_t* v) { return Le(v, 8); }
  bool Bytes(std::string* b, uint32_t max_len) {
    uint32_t n = 0;
    if (!U32(&n) || n > max_len || n > in_.size() - pos_) return false;
    b->assign(in_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  bool AtEnd() const { return pos_ == in_.size(); }

 private:
  template <typename T>
  bool Le(T* v, int n) {
    if (in_.size() - pos_ < static_cast<size_t>(n)) return false;
    uint64_t r = 0;
    for (int i = 0; i < n; ++i)
      r |= static_cast<uint64_t>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    pos_ += n;
    *v = static_cast<T>(r);
    return true;
  }
  std::string_view in_;
  size_t pos_ = 0;
};

// Splits sealed bytes into payload and verifies the trailing checksum.
absl::StatusOr<std::string_view> Unseal(std::string_view bytes, absl::string_view what) {
  if (bytes.size() < 8) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": ", bytes.size(), " bytes is too short"));
  }
  std::string_view payload = bytes.substr(0, bytes.size() - 8);
  Reader tail(bytes.substr(bytes.size() - 8));
  uint64_t sum = 0;
  tail.U64(&sum);
  if (sum != Fnv1a64(payload)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": checksum mismatch (corrupt or not a ", what, ")"));
  }
  return payload;
}

absl::Status CheckMagic(Reader& r, uint32_t magic, absl::string_view what) {
  uint32_t m = 0;
  uint16_t version = 0, reserved = 0;
  if (!r.U32(&m) || m != magic)
    return absl::InvalidArgumentError(absl::StrCat(what, ": bad magic"));
  if (!r.U16(&version) || !r.U16(&reserved) || version != kVersion) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": unsupported version ", version));
  }
  return absl::OkStatus();
}

}  // namespace

uint64_t Fnv1a64(std::string_view bytes, uint64_t seed) {
  uint64_t h = seed;
  for (char c : bytes) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string EncodeAgentAddress(const AgentAddress& address) {
  Writer w;
  w.U32(kAddressMagic);
  w.U16(kVersion);
  w.U16(0);
  w.U64(address.agent_id);
  w.U32(address.pid);
  w.Bytes(address.worker_address);
  return std::move(w).Seal();
}

absl::StatusOr<AgentAddress> DecodeAgentAddress(std::string_view bytes) {
  constexpr char kWhat[] = "transfer agent address";
  auto payload = Unseal(bytes, kWhat);
  if (!payload.ok()) return payload.status();
  Reader r(*payload);
  if (absl::Status s = CheckMagic(r, kAddressMagic, kWhat); !s.ok()) return s;
  AgentAddress a;
  if (!r.U64(&a.agent_id) || !r.U32(&a.pid) ||
      !r.Bytes(&a.worker_address, kMaxWorkerAddressBytes) || !r.AtEnd() ||
      a.worker_address.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kWhat, ": malformed"));
  }
  return a;
}

std::string EncodeRemoteDescriptor(const RemoteDescriptor& descriptor) {
  Writer w;
  w.U32(kDescriptorMagic);
  w.U16(kVersion);
  w.U16(0);
  w.U64(descriptor.agent_id);
  w.U32(descriptor.registration_id);
  w.U32(static_cast<uint32_t>(descriptor.regions.size()));
  for (const RemoteRegion& region : descriptor.regions) {
    w.U64(region.base);
    w.U64(region.length);
    w.Bytes(region.rkey);
  }
  return std::move(w).Seal();
}

absl::StatusOr<RemoteDescriptor> DecodeRemoteDescriptor(std::string_view bytes) {
  constexpr char kWhat[] = "remote memory descriptor";
  auto payload = Unseal(bytes, kWhat);
  if (!payload.ok()) return payload.status();
  Reader r(*payload);
  if (absl::Status s = CheckMagic(r, kDescriptorMagic, kWhat); !s.ok()) return s;
  RemoteDescriptor d;
  uint32_t count = 0;
  if (!r.U64(&d.agent_id) || !r.U32(&d.registration_id) || !r.U32(&count) || count > kMaxRegions) {
    return absl::InvalidArgumentError(absl::StrCat(kWhat, ": malformed header"));
  }
  d.regions.resize(count);
  for (RemoteRegion& region : d.regions) {
    if (!r.U64(&region.base) || !r.U64(&region.length) || !r.Bytes(&region.rkey, kMaxRkeyBytes)) {
      return absl::InvalidArgumentError(absl::StrCat(kWhat, ": truncated region list"));
    }
    if (region.base + region.length < region.base) {
      return absl::InvalidArgumentError(absl::StrCat(kWhat, ": region wraps the address space"));
    }
  }
  if (!r.AtEnd()) return absl::InvalidArgumentError(absl::StrCat(kWhat, ": trailing bytes"));
  return d;
}

AmHeaderBytes EncodeAmHeader(const AmHeader& header) {
  Writer w;
  w.U32(kAmMagic);
  w.U32(static_cast<uint32_t>(header.kind));
  w.U64(header.sender_agent_id);
  w.U64(header.transfer_id);
  w.U64(header.target_agent_id);
  w.U32(header.registration_id);
  w.U32(header.timeout_ms);
  w.U64(header.remote_addr);
  w.U64(header.length);
  AmHeaderBytes out;
  std::memcpy(out.data(), w.str().data(), out.size());
  return out;
}

absl::StatusOr<AmHeader> DecodeAmHeader(std::string_view bytes) {
  Reader r(bytes);
  uint32_t magic = 0, kind = 0;
  AmHeader h;
  if (bytes.size() != kAmHeaderBytes || !r.U32(&magic) || magic != kAmMagic || !r.U32(&kind) ||
      (kind != static_cast<uint32_t>(AmKind::kSegment) &&
       kind != static_cast<uint32_t>(AmKind::kFence)) ||
      !r.U64(&h.sender_agent_id) || !r.U64(&h.transfer_id) || !r.U64(&h.target_agent_id) ||
      !r.U32(&h.registration_id) || !r.U32(&h.timeout_ms) || !r.U64(&h.remote_addr) ||
      !r.U64(&h.length)) {
    return absl::InvalidArgumentError("malformed transfer message header");
  }
  h.kind = static_cast<AmKind>(kind);
  return h;
}

FenceReplyBytes EncodeFenceReply(const FenceReply& reply) {
  Writer w;
  w.U32(kFenceReplyMagic);
  w.U32(static_cast<uint32_t>(reply.state));
  w.U32(reply.code);
  w.U32(0);
  w.U64(reply.transfer_id);
  w.U64(reply.landed);
  FenceReplyBytes out;
  std::memcpy(out.data(), w.str().data(), out.size());
  return out;
}

absl::StatusOr<FenceReply> DecodeFenceReply(std::string_view bytes) {
  Reader r(bytes);
  uint32_t magic = 0, state = 0, reserved = 0;
  FenceReply f;
  if (bytes.size() != kFenceReplyBytes || !r.U32(&magic) || magic != kFenceReplyMagic ||
      !r.U32(&state) || state > static_cast<uint32_t>(FenceState::kFailed) || !r.U32(&f.code) ||
      !r.U32(&reserved) || !r.U64(&f.transfer_id) || !r.U64(&f.landed)) {
    return absl::InvalidArgumentError("malformed transfer fence reply");
  }
  f.state = static_cast<FenceState>(state);
  return f;
}

}  // namespace cleave::ucx_wire
