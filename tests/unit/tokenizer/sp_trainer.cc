#include "tests/unit/tokenizer/sp_trainer.h"

#include <sentencepiece_trainer.h>

#include <fstream>

namespace cleave::testing {

std::string TrainSentencePiece(const std::string& dir, const std::string& prefix,
                               const std::vector<std::string>& sentences, const std::string& args) {
  const std::string corpus = dir + "/corpus.txt";
  {
    std::ofstream out(corpus);
    for (const std::string& s : sentences) out << s << "\n";
    if (!out) return "cannot write " + corpus;
  }
  const auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + corpus + " --model_prefix=" + dir + "/" + prefix + " " + args);
  return status.ok() ? "" : status.ToString();
}

}  // namespace cleave::testing
