// Where the end-to-end tests find the k2forge binary and the source tree (compile definitions
// set by tests/CMakeLists.txt), and the corpus store several of them train on.
#pragma once

#include <string>

#include "test_util.h"

namespace k2f::testing {

inline const std::string kBinary = K2F_BINARY;
inline const std::string kSource = K2F_SOURCE_DIR;

// The embedded held-out corpus tokenised with the embedded tokenizer into `dir`/corpus.h5.
inline std::string corpus_store(const ScratchDir& dir) {
  const std::string store = dir / "corpus.h5";
  const auto r = run_command(kBinary + " data build --input " + kSource + "/assets/corpus/python_docs_heldout.jsonl" +
                             " --tokenizer " + kSource + "/assets/tokenizer --out " + store + " --kind text");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return store;
}

}  // namespace k2f::testing
