// `k2forge data build`: tokenises text inputs into an HDF5 token store, streaming (one document
// in memory at a time, tokens appended in blocks), with a progress bar on stderr. Each document
// is followed by the tokenizer's EOS id. Output goes to "<out>.tmp.<pid>" and is renamed into
// place only when complete; on any error the temporary file is removed and nothing is left.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/json_io.h"

namespace k2f::data {

struct StoreBuildOptions {
  std::vector<std::string> inputs;  // .jsonl or .txt files (document_reader.h)
  std::string tokenizer_dir;
  std::string out;
  std::string kind = "text";  // "text"; "chat" arrives with the chat template
  bool progress = true;
  int64_t flush_tokens = 1 << 20;
  void validate() const;
};

struct StoreBuildReport {
  int64_t documents = 0, tokens = 0, input_bytes = 0;
  double seconds = 0;
  std::string tokenizer_hash;
  Json to_json() const;
};

StoreBuildReport build_store(const StoreBuildOptions& options);

}  // namespace k2f::data
