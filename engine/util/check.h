// CHECK for broken invariants only: a failed CHECK is a bug in cleave, never bad input.
#ifndef CLEAVE_ENGINE_UTIL_CHECK_H_
#define CLEAVE_ENGINE_UTIL_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                              \
    }                                                                            \
  } while (0)

#endif  // CLEAVE_ENGINE_UTIL_CHECK_H_
