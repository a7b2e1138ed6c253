// The SentencePiece library, reached only through libcleave_sentencepiece.so (see
// sp_module_abi.h for why it is a module of its own). No cleave binary links
// libsentencepiece: the module is dlopen'd on first use with RTLD_NOW | RTLD_LOCAL |
// RTLD_DEEPBIND and stays loaded for the life of the process.
//
// Where the module is looked for, first match wins:
//   1. $CLEAVE_SENTENCEPIECE_MODULE, a path to the file; when set, nothing else is tried.
//   2. libcleave_sentencepiece.so beside the binary holding this code (dladdr), then
//      beside the running executable (/proc/self/exe): the layout of an installed cleave.
//   3. The module's path in the build tree that built this code, compiled in, so every
//      executable and test of a build finds it wherever CMake put them.
// A module that cannot be found or opened is an error naming every path tried.
#ifndef CLEAVE_ENGINE_TOKENIZER_SP_PROCESSOR_H_
#define CLEAVE_ENGINE_TOKENIZER_SP_PROCESSOR_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/tokenizer/sp_module_abi.h"

namespace cleave::spm {

inline constexpr char kModuleFileName[] = "libcleave_sentencepiece.so";
inline constexpr char kModuleEnvVar[] = "CLEAVE_SENTENCEPIECE_MODULE";

// The candidate paths, in the order they are tried (the environment is read on each call).
std::vector<std::string> ModuleSearchPath();

// The path the module was loaded from, loading it if this is the first use. A failure is
// not remembered: the next call searches again.
absl::StatusOr<std::string> ModulePath();

class Processor {
 public:
  ~Processor();
  Processor(const Processor&) = delete;
  Processor& operator=(const Processor&) = delete;

  // The module's error when it cannot be loaded; INVALID_ARGUMENT with the library's
  // message when the file is missing or not a model.
  static absl::StatusOr<std::unique_ptr<Processor>> Load(const std::string& path);
  static absl::StatusOr<std::unique_ptr<Processor>> LoadSerialized(std::string_view model_proto);

  absl::Status Encode(std::string_view text, std::vector<int>* ids) const;
  // The library's own decode (invalid byte pieces become U+FFFD, out-of-range ids fail
  // with an empty result); cleave decodes piece by piece and checks itself against this.
  std::string DecodeIds(const std::vector<int>& ids) const;

  int piece_size() const { return api_->piece_size(handle_); }
  int bos_id() const { return api_->bos_id(handle_); }  // -1 when the model has none
  int eos_id() const { return api_->eos_id(handle_); }
  int pad_id() const { return api_->pad_id(handle_); }
  int unk_id() const { return api_->unk_id(handle_); }
  std::string IdToPiece(int id) const;
  bool IsControl(int id) const { return api_->piece_type(handle_, id) & CLEAVE_SP_PIECE_CONTROL; }
  bool IsUnknown(int id) const { return api_->piece_type(handle_, id) & CLEAVE_SP_PIECE_UNKNOWN; }
  bool IsByte(int id) const { return api_->piece_type(handle_, id) & CLEAVE_SP_PIECE_BYTE; }
  std::string SerializedModelProto() const;

 private:
  Processor(const CleaveSpApi* api, CleaveSpProcessor* handle) : api_(api), handle_(handle) {}

  const CleaveSpApi* api_;     // the module's table, never unloaded
  CleaveSpProcessor* handle_;  // owned; freed by the module
};

}  // namespace cleave::spm

#endif  // CLEAVE_ENGINE_TOKENIZER_SP_PROCESSOR_H_
