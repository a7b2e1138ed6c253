// libcleave_sentencepiece.so: sentencepiece::SentencePieceProcessor behind the C table of
// sp_module_abi.h. Built with hidden visibility; cleave_sp_module_api is its one export.
//
// No abseil header may be included here: Debian's sentencepiece_processor.h declares
// `absl::string_view` as std::string_view, while Debian's abseil (built with
// ABSL_OPTION_USE_STD_STRING_VIEW=0) has its own absl::string_view class.
#include <sentencepiece_processor.h>

#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/sp_module_abi.h"

struct CleaveSpProcessor {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {

using sentencepiece::SentencePieceProcessor;

void Send(CleaveSpBytesSink sink, void* ctx, std::string_view bytes) {
  if (sink != nullptr) sink(ctx, bytes.data(), bytes.size());
}

// The library reports through util::Status, but allocation and its protobuf runtime may
// still throw; nothing may unwind into the caller, which is another binary.
template <typename Fn>
bool Guarded(Fn fn, CleaveSpBytesSink error, void* error_ctx) {
  try {
    const auto status = fn();
    if (status.ok()) return true;
    Send(error, error_ctx, status.ToString());
  } catch (const std::exception& e) {
    Send(error, error_ctx, std::string("SentencePiece threw: ") + e.what());
  } catch (...) {
    Send(error, error_ctx, "SentencePiece threw an unknown exception");
  }
  return false;
}

template <typename Fn>
CleaveSpProcessor* Create(Fn load, CleaveSpBytesSink error, void* error_ctx) {
  std::unique_ptr<CleaveSpProcessor> p;
  const bool ok = Guarded(
      [&] {
        p = std::make_unique<CleaveSpProcessor>();
        return load(p->processor);
      },
      error, error_ctx);
  return ok ? p.release() : nullptr;
}

bool InRange(const CleaveSpProcessor* p, int id) {
  return id >= 0 && id < p->processor.GetPieceSize();
}

CleaveSpProcessor* LoadFile(const char* path, CleaveSpBytesSink error, void* error_ctx) {
  return Create([path](SentencePieceProcessor& sp) { return sp.Load(path); }, error, error_ctx);
}

CleaveSpProcessor* LoadSerialized(const char* model_proto, size_t size, CleaveSpBytesSink error,
                                  void* error_ctx) {
  return Create(
      [=](SentencePieceProcessor& sp) {
        return sp.LoadFromSerializedProto(std::string_view(model_proto, size));
      },
      error, error_ctx);
}

void Destroy(CleaveSpProcessor* p) { delete p; }

int Encode(const CleaveSpProcessor* p, const char* text, size_t size, CleaveSpIdsSink ids_sink,
           void* ids_ctx, CleaveSpBytesSink error, void* error_ctx) {
  std::vector<int> ids;
  const bool ok = Guarded([&] { return p->processor.Encode(std::string_view(text, size), &ids); },
                          error, error_ctx);
  if (ok) ids_sink(ids_ctx, ids.data(), ids.size());
  return ok ? 1 : 0;
}

int DecodeIds(const CleaveSpProcessor* p, const int* ids, size_t count, CleaveSpBytesSink text_sink,
              void* text_ctx) {
  std::string text;
  const bool ok =
      Guarded([&] { return p->processor.Decode(std::vector<int>(ids, ids + count), &text); },
              nullptr, nullptr);
  if (ok) Send(text_sink, text_ctx, text);
  return ok ? 1 : 0;
}

int PieceSize(const CleaveSpProcessor* p) { return p->processor.GetPieceSize(); }
int BosId(const CleaveSpProcessor* p) { return p->processor.bos_id(); }
int EosId(const CleaveSpProcessor* p) { return p->processor.eos_id(); }
int PadId(const CleaveSpProcessor* p) { return p->processor.pad_id(); }
int UnkId(const CleaveSpProcessor* p) { return p->processor.unk_id(); }

// The library indexes its pieces without a bounds check.
void IdToPiece(const CleaveSpProcessor* p, int id, CleaveSpBytesSink sink, void* ctx) {
  if (InRange(p, id)) Send(sink, ctx, p->processor.IdToPiece(id));
}

uint32_t PieceType(const CleaveSpProcessor* p, int id) {
  if (!InRange(p, id)) return 0;
  uint32_t flags = 0;
  if (p->processor.IsControl(id)) flags |= CLEAVE_SP_PIECE_CONTROL;
  if (p->processor.IsUnknown(id)) flags |= CLEAVE_SP_PIECE_UNKNOWN;
  if (p->processor.IsByte(id)) flags |= CLEAVE_SP_PIECE_BYTE;
  return flags;
}

void SerializedModelProto(const CleaveSpProcessor* p, CleaveSpBytesSink sink, void* ctx) {
  try {
    Send(sink, ctx, p->processor.serialized_model_proto());
  } catch (...) {
    // Only allocation can fail here; the caller sees an empty proto and rejects it.
  }
}

constexpr CleaveSpApi kApi = {
    .abi_version = CLEAVE_SP_ABI_VERSION,
    .load_file = LoadFile,
    .load_serialized = LoadSerialized,
    .destroy = Destroy,
    .encode = Encode,
    .decode_ids = DecodeIds,
    .piece_size = PieceSize,
    .bos_id = BosId,
    .eos_id = EosId,
    .pad_id = PadId,
    .unk_id = UnkId,
    .id_to_piece = IdToPiece,
    .piece_type = PieceType,
    .serialized_model_proto = SerializedModelProto,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const CleaveSpApi* cleave_sp_module_api(
    uint32_t abi_version) {
  return abi_version == CLEAVE_SP_ABI_VERSION ? &kApi : nullptr;
}
