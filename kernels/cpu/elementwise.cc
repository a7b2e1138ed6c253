#include <cstring>

#include "cleave/kernels/cpu.h"

namespace cleave::kernels::cpu {

void Embedding(const EmbeddingParams& p) {
  for (int t = 0; t < p.num_tokens; ++t) {
    std::memcpy(p.out + static_cast<int64_t>(t) * p.dim,
                p.table + static_cast<int64_t>(p.ids[t]) * p.dim, p.dim * sizeof(float));
  }
}

void Add(const AddParams& p) {
  for (int64_t i = 0; i < p.n; ++i) p.y[i] += p.x[i];
}

}  // namespace cleave::kernels::cpu
