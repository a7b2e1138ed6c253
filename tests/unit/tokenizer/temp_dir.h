// A temporary directory removed when the test that made it ends.
#ifndef CLEAVE_TESTS_UNIT_TOKENIZER_TEMP_DIR_H_
#define CLEAVE_TESTS_UNIT_TOKENIZER_TEMP_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace cleave::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "cleave-tok-XXXXXX").string();
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  void Write(const std::string& name, const std::string& contents) const {
    std::ofstream(path_ + "/" + name, std::ios::binary) << contents;
  }

 private:
  std::string path_;
};

}  // namespace cleave::testing

#endif  // CLEAVE_TESTS_UNIT_TOKENIZER_TEMP_DIR_H_
