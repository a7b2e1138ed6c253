// cleave_sp_train DIR [--spm_flag=value ...]: trains DIR/tokenizer.model, a small
// Llama-style BPE model (vocab 300, byte fallback, <unk> 0, <s> 1, </s> 2) on a built-in
// corpus; later flags override the defaults. It runs as its own process so that tests which
// must not link libsentencepiece (sentencepiece_isolation_test) still get a trained model.
#include <filesystem>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "tests/unit/tokenizer/sp_trainer.h"

namespace {

constexpr char kDefaultArgs[] =
    "--vocab_size=300 --model_type=bpe --byte_fallback=true --character_coverage=0.9995 "
    "--unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 --normalization_rule_name=identity "
    "--remove_extra_whitespaces=false --add_dummy_prefix=true --split_digits=true "
    "--num_threads=1 --minloglevel=2";

std::vector<std::string> Corpus() {
  const std::vector<std::string> words = {
      "hi",    "hello", "world",  "the",   "experts",     "said",
      "model", "token", "router", "layer", "prefill",     "decode",
      "cache", "quick", "brown",  "fox",   "caf\xC3\xA9", "\xE4\xB8\xAD\xE6\x96\x87",
      "12",    "345"};
  std::mt19937 rng(7);
  std::vector<std::string> lines;
  for (int i = 0; i < 1500; ++i) {
    std::string line;
    const int n = std::uniform_int_distribution<int>(3, 10)(rng);
    for (int w = 0; w < n; ++w) line += (w > 0 ? " " : "") + words[rng() % words.size()];
    lines.push_back(line + (rng() % 3 == 0 ? "." : ""));
  }
  return lines;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: cleave_sp_train DIR [--spm_flag=value ...]\n";
    return 2;
  }
  const std::string dir = argv[1];
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    std::cerr << "cleave_sp_train: " << dir << ": " << ec.message() << "\n";
    return 1;
  }
  std::string args = kDefaultArgs;
  for (int i = 2; i < argc; ++i) args += std::string(" ") + argv[i];
  const std::string error = cleave::testing::TrainSentencePiece(dir, "tokenizer", Corpus(), args);
  if (!error.empty()) {
    std::cerr << "cleave_sp_train: " << error << "\n";
    return 1;
  }
  return 0;
}
