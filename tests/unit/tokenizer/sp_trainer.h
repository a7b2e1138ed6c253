// Trains small SentencePiece models inside tests. No abseil in this header or its .cc:
// the trainer header pulls in sentencepiece_processor.h (see engine/tokenizer/sp_processor.h).
#ifndef CLEAVE_TESTS_UNIT_TOKENIZER_SP_TRAINER_H_
#define CLEAVE_TESTS_UNIT_TOKENIZER_SP_TRAINER_H_

#include <string>
#include <vector>

namespace cleave::testing {

// Writes `sentences` to dir/corpus.txt and trains dir/<prefix>.model with spm_train-style
// `args` added to the input/prefix flags. Returns "" on success, else the error.
std::string TrainSentencePiece(const std::string& dir, const std::string& prefix,
                               const std::vector<std::string>& sentences, const std::string& args);

}  // namespace cleave::testing

#endif  // CLEAVE_TESTS_UNIT_TOKENIZER_SP_TRAINER_H_
