#include "engine/tokenizer/sp_processor.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <utility>

#include "absl/base/const_init.h"
#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "engine/util/status.h"

namespace cleave::spm {
namespace {

namespace fs = std::filesystem;

// RTLD_DEEPBIND puts the module's own dependency tree ahead of the global scope, so
// libsentencepiece's references to its bundled protobuf bind to that copy even though
// libprotobuf 3.21 is already loaded; RTLD_LOCAL keeps its symbols out of everyone
// else's lookups. ASan and TSan refuse DEEPBIND outright, so their builds give up the
// isolation rather than fail to load.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kOpenFlags = RTLD_NOW | RTLD_LOCAL;
#else
constexpr int kOpenFlags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif

struct Module {
  std::string path;
  const CleaveSpApi* api;
};

ABSL_CONST_INIT absl::Mutex module_mu(absl::kConstInit);
// Never unloaded: processors may live until exit, and unloading libsentencepiece would run
// its protobuf shutdown while they do.
const Module* loaded_module ABSL_GUARDED_BY(module_mu) = nullptr;

// Opens one candidate; the error is a short reason, and NOT_FOUND only when no file is
// there at all.
absl::StatusOr<const CleaveSpApi*> OpenModule(const std::string& path) {
  void* handle = dlopen(path.c_str(), kOpenFlags);
  if (handle == nullptr) {
    const char* error = dlerror();
    std::error_code ec;
    if (!fs::exists(path, ec)) return absl::NotFoundError("no such file");
    return absl::FailedPreconditionError(error != nullptr ? error : "dlopen failed");
  }
  const auto entry = reinterpret_cast<CleaveSpEntryPoint>(dlsym(handle, CLEAVE_SP_ENTRY_POINT));
  const CleaveSpApi* api = entry != nullptr ? entry(CLEAVE_SP_ABI_VERSION) : nullptr;
  if (api == nullptr) {
    dlclose(handle);
    return absl::FailedPreconditionError(
        entry == nullptr ? absl::StrCat("no ", CLEAVE_SP_ENTRY_POINT,
                                        " symbol: not a cleave SentencePiece module")
                         : absl::StrCat("built for another ABI version than ",
                                        CLEAVE_SP_ABI_VERSION, " (a stale build?)"));
  }
  return api;
}

absl::StatusOr<const Module*> LoadedModule() {
  absl::MutexLock lock(&module_mu);
  if (loaded_module != nullptr) return loaded_module;
  const std::vector<std::string> paths = ModuleSearchPath();
  std::vector<std::string> failures;
  bool any_file = false;
  for (const std::string& path : paths) {
    absl::StatusOr<const CleaveSpApi*> api = OpenModule(path);
    if (api.ok()) {
      loaded_module = new Module{path, *api};
      return loaded_module;
    }
    any_file |= !absl::IsNotFound(api.status());
    failures.push_back(absl::StrCat(path, " (", api.status().message(), ")"));
  }
  const std::string message = absl::StrCat(
      "cannot load ", kModuleFileName,
      ", the module that reads SentencePiece models; tried: ", absl::StrJoin(failures, "; "),
      ". Set ", kModuleEnvVar, " to the module's path.");
  return any_file ? absl::FailedPreconditionError(message) : absl::NotFoundError(message);
}

absl::StatusOr<const CleaveSpApi*> Api() {
  ASSIGN_OR_RETURN(const Module* module, LoadedModule());
  return module->api;
}

void AppendBytes(void* ctx, const char* data, size_t size) {
  static_cast<std::string*>(ctx)->append(data, size);
}

void AssignIds(void* ctx, const int* ids, size_t count) {
  static_cast<std::vector<int>*>(ctx)->assign(ids, ids + count);
}

}  // namespace

std::vector<std::string> ModuleSearchPath() {
  if (const char* env = std::getenv(kModuleEnvVar); env != nullptr && *env != '\0') return {env};
  std::vector<std::string> paths;
  auto add = [&](std::string path) {
    if (std::find(paths.begin(), paths.end(), path) == paths.end()) {
      paths.push_back(std::move(path));
    }
  };
  auto add_beside = [&](const fs::path& binary) {
    if (binary.is_absolute()) add((binary.parent_path() / kModuleFileName).string());
  };
  // The binary holding this code: the executable itself while cleave links statically,
  // a shared library of cleave's should it ever be one.
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&ModuleSearchPath), &info) != 0 && info.dli_fname != nullptr) {
    add_beside(info.dli_fname);
  }
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) add_beside(exe);
#ifdef CLEAVE_SENTENCEPIECE_MODULE_BUILD_PATH
  add(CLEAVE_SENTENCEPIECE_MODULE_BUILD_PATH);
#endif
  return paths;
}

absl::StatusOr<std::string> ModulePath() {
  ASSIGN_OR_RETURN(const Module* module, LoadedModule());
  return module->path;
}

Processor::~Processor() { api_->destroy(handle_); }

absl::StatusOr<std::unique_ptr<Processor>> Processor::Load(const std::string& path) {
  ASSIGN_OR_RETURN(const CleaveSpApi* api, Api());
  std::string error;
  CleaveSpProcessor* handle = api->load_file(path.c_str(), AppendBytes, &error);
  if (handle == nullptr) return absl::InvalidArgumentError(error);
  return std::unique_ptr<Processor>(new Processor(api, handle));
}

absl::StatusOr<std::unique_ptr<Processor>> Processor::LoadSerialized(std::string_view model_proto) {
  ASSIGN_OR_RETURN(const CleaveSpApi* api, Api());
  std::string error;
  CleaveSpProcessor* handle =
      api->load_serialized(model_proto.data(), model_proto.size(), AppendBytes, &error);
  if (handle == nullptr) return absl::InvalidArgumentError(error);
  return std::unique_ptr<Processor>(new Processor(api, handle));
}

absl::Status Processor::Encode(std::string_view text, std::vector<int>* ids) const {
  ids->clear();
  std::string error;
  if (api_->encode(handle_, text.data(), text.size(), AssignIds, ids, AppendBytes, &error) == 0) {
    return absl::InternalError(absl::StrCat("SentencePiece encode failed: ", error));
  }
  return absl::OkStatus();
}

std::string Processor::DecodeIds(const std::vector<int>& ids) const {
  std::string text;
  if (api_->decode_ids(handle_, ids.data(), ids.size(), AppendBytes, &text) == 0) return "";
  return text;
}

std::string Processor::IdToPiece(int id) const {
  std::string piece;
  api_->id_to_piece(handle_, id, AppendBytes, &piece);
  return piece;
}

std::string Processor::SerializedModelProto() const {
  std::string proto;
  api_->serialized_model_proto(handle_, AppendBytes, &proto);
  return proto;
}

}  // namespace cleave::spm
