// The C interface of libcleave_sentencepiece.so, the only cleave binary that links
// libsentencepiece (sp_module.cc implements it, sp_processor.cc dlopens it).
//
// Why a separate module: Debian's libsentencepiece carries its own protobuf-lite 3.14 and
// exports those symbols, while gRPC and cleave's messages use libprotobuf 3.21. Linked
// into one executable the two interpose each other, and loading a tokenizer.model aborts
// in protobuf's version check. Opened with RTLD_LOCAL | RTLD_DEEPBIND, the module and its
// libsentencepiece bind to their own protobuf and stay out of the global symbol scope.
//
// Only C types cross this boundary, and memory never changes owner: results reach the
// caller through sink callbacks that copy them out before the call returns (a DEEPBIND
// object may bind malloc/operator new differently from the executable). No entry point
// lets an exception out; sinks must not throw either.
#ifndef CLEAVE_ENGINE_TOKENIZER_SP_MODULE_ABI_H_
#define CLEAVE_ENGINE_TOKENIZER_SP_MODULE_ABI_H_

#include <stddef.h>
#include <stdint.h>

extern "C" {

// Bumped whenever CleaveSpApi changes, so that a stale module is refused, not misused.
#define CLEAVE_SP_ABI_VERSION 1u

// The symbol sp_processor.cc looks up: `const CleaveSpApi* (uint32_t abi_version)`,
// NULL when the module was built for another ABI version.
#define CLEAVE_SP_ENTRY_POINT "cleave_sp_module_api"

// Flags of CleaveSpApi::piece_type.
#define CLEAVE_SP_PIECE_CONTROL 1u
#define CLEAVE_SP_PIECE_UNKNOWN 2u
#define CLEAVE_SP_PIECE_BYTE 4u

typedef struct CleaveSpProcessor CleaveSpProcessor;  // a loaded model

// Receives bytes (text, a piece, a message) owned by the module, valid during the call.
typedef void (*CleaveSpBytesSink)(void* ctx, const char* data, size_t size);
// Receives token ids, valid during the call.
typedef void (*CleaveSpIdsSink)(void* ctx, const int* ids, size_t count);

typedef struct CleaveSpApi {
  uint32_t abi_version;  // CLEAVE_SP_ABI_VERSION

  // NULL on failure, with the library's message sent to `error`.
  CleaveSpProcessor* (*load_file)(const char* path, CleaveSpBytesSink error, void* error_ctx);
  CleaveSpProcessor* (*load_serialized)(const char* model_proto, size_t size,
                                        CleaveSpBytesSink error, void* error_ctx);
  void (*destroy)(CleaveSpProcessor* p);

  // 1 with the ids sent to `ids`, or 0 with the message sent to `error`. Thread-safe.
  int (*encode)(const CleaveSpProcessor* p, const char* text, size_t size, CleaveSpIdsSink ids,
                void* ids_ctx, CleaveSpBytesSink error, void* error_ctx);
  // The library's own decode: 1 with the text sent to `text`, 0 when it refuses the ids.
  int (*decode_ids)(const CleaveSpProcessor* p, const int* ids, size_t count,
                    CleaveSpBytesSink text, void* text_ctx);

  int (*piece_size)(const CleaveSpProcessor* p);
  // -1 when the model has none.
  int (*bos_id)(const CleaveSpProcessor* p);
  int (*eos_id)(const CleaveSpProcessor* p);
  int (*pad_id)(const CleaveSpProcessor* p);
  int (*unk_id)(const CleaveSpProcessor* p);
  // Ids outside [0, piece_size) give an empty piece and no flags.
  void (*id_to_piece)(const CleaveSpProcessor* p, int id, CleaveSpBytesSink piece, void* ctx);
  uint32_t (*piece_type)(const CleaveSpProcessor* p, int id);  // CLEAVE_SP_PIECE_* flags
  void (*serialized_model_proto)(const CleaveSpProcessor* p, CleaveSpBytesSink proto, void* ctx);
} CleaveSpApi;

typedef const CleaveSpApi* (*CleaveSpEntryPoint)(uint32_t abi_version);

}  // extern "C"

#endif  // CLEAVE_ENGINE_TOKENIZER_SP_MODULE_ABI_H_
