// `k2forge data build`: tokenises inputs into an HDF5 token store, streaming (one document in
// memory at a time, tokens appended in blocks), with a progress bar on stderr. Two kinds:
//   text  .jsonl {"text": ...} lines or .txt paragraphs; no loss mask (every token is a target).
//   chat  .jsonl conversations {"messages": [...], "tools": [...]}, one per line, rendered by the
//         K2 chat template (chat_template.h); the store gets /loss_mask, 1 on assistant tokens.
// Each document is followed by the tokenizer's EOS id; in chat stores that EOS has mask 0: K2
// ends a turn with <|im_end|> and never writes EOS in a chat, so EOS only separates documents
// (as in text stores) and is never a target. Output goes to "<out>.tmp.<pid>" and is renamed into
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
  std::string kind = "text";  // "text" or "chat"
  bool progress = true;
  int64_t flush_tokens = 1 << 20;
  void validate() const;
};

struct StoreBuildReport {
  std::string kind;
  int64_t documents = 0, tokens = 0, input_bytes = 0;
  int64_t loss_tokens = 0;  // chat: tokens with loss_mask 1 (reported for chat stores only)
  double seconds = 0;
  std::string tokenizer_hash;
  Json to_json() const;
};

StoreBuildReport build_store(const StoreBuildOptions& options);

}  // namespace k2f::data
