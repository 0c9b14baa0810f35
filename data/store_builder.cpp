#include "data/store_builder.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "base/error.h"
#include "data/document_reader.h"
#include "data/progress_bar.h"
#include "data/token_store_writer.h"
#include "data/tokenizer.h"

namespace k2f::data {
namespace {

namespace fs = std::filesystem;

std::string megabytes(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f MB", static_cast<double>(bytes) / 1e6);
  return text;
}

// Tokenises every input into `writer`, updating `report` and the progress bar.
void write_documents(const StoreBuildOptions& options, const Tokenizer& tokenizer, TokenStoreWriter& writer,
                     StoreBuildReport& report) {
  int64_t total_bytes = 0;
  for (const auto& input : options.inputs) total_bytes += static_cast<int64_t>(fs::file_size(input));
  ProgressBar progress("data build", total_bytes, options.progress);
  std::vector<int32_t> ids;
  std::string text;
  int64_t done_bytes = 0;
  for (const auto& input : options.inputs) {
    DocumentReader reader(input);
    while (reader.next(text)) {
      ids.clear();
      tokenizer.encode_ordinary_append(text, ids);
      ids.push_back(tokenizer.eos_id());
      writer.append_document(ids);
      const int64_t done = done_bytes + reader.bytes_read();
      progress.update(done, [&] { return megabytes(done) + ", " + std::to_string(writer.num_tokens()) + " tokens"; });
    }
    done_bytes += reader.total_bytes();
  }
  report.input_bytes = done_bytes;
  report.documents = writer.num_documents();
  report.tokens = writer.num_tokens();
  check(report.documents > 0, "no documents in ", options.inputs.size() == 1 ? options.inputs[0] : "the inputs",
        " (an empty store cannot be trained on)");
  progress.finish(megabytes(done_bytes) + ", " + std::to_string(report.documents) + " documents, " +
                  std::to_string(report.tokens) + " tokens");
}

}  // namespace

void StoreBuildOptions::validate() const {
  check(kind == "text", "--kind \"", kind, "\" is not supported by this build (accepted: text; chat arrives with ",
        "the chat template)");
  check(!inputs.empty(), "--input: at least one input file is required");
  for (const auto& input : inputs) {
    check(fs::is_regular_file(input), input, ": input file not found");
    check(is_supported_document_file(input), input, ": unsupported input (expected .jsonl or .txt)");
  }
  check(!out.empty(), "--out: an output path is required");
  check(!fs::exists(out), out, ": already exists (choose a new --out; stores are never overwritten)");
  check(flush_tokens > 0, "flush_tokens (", flush_tokens, ") must be positive");
}

Json StoreBuildReport::to_json() const {
  return {{"documents", documents}, {"tokens", tokens}, {"input_bytes", input_bytes}, {"seconds", seconds},
          {"tokenizer_hash", tokenizer_hash}};
}

StoreBuildReport build_store(const StoreBuildOptions& options) {
  options.validate();
  const auto start = std::chrono::steady_clock::now();
  const Tokenizer tokenizer = Tokenizer::load(options.tokenizer_dir);
  check(tokenizer.eos_id() >= 0, options.tokenizer_dir, ": the tokenizer has no EOS token (tokenizer_config.json ",
        "eos_token or a \"[EOS]\" special token), needed to end each document");
  StoreBuildReport report;
  report.tokenizer_hash = tokenizer.hash();
  const std::string temporary = options.out + ".tmp." + std::to_string(::getpid());
  std::remove(temporary.c_str());
  try {
    TokenStoreWriterOptions writer_options;
    writer_options.vocab_size = tokenizer.vocab_size();
    writer_options.tokenizer_hash = tokenizer.hash();
    writer_options.flush_tokens = options.flush_tokens;
    TokenStoreWriter writer(temporary, writer_options);
    write_documents(options, tokenizer, writer, report);
    writer.finish();
    fs::rename(temporary, options.out);
  } catch (...) {
    std::remove(temporary.c_str());
    throw;
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace k2f::data
