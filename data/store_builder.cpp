#include "data/store_builder.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "base/error.h"
#include "data/chat_template.h"
#include "data/document_reader.h"
#include "data/progress_bar.h"
#include "data/token_store_writer.h"
#include "data/tokenizer.h"

namespace k2f::data {
namespace {

namespace fs = std::filesystem;

// Creates the missing directories above `out` (as `train` creates its run directory) and returns
// the outermost one it made, which a failed build removes again: nothing is left behind.
std::optional<fs::path> create_missing_parents(const std::string& out) {
  const fs::path parent = fs::absolute(out).parent_path();
  fs::path outermost_missing;
  for (fs::path dir = parent; !dir.empty() && !fs::exists(dir); dir = dir.parent_path()) {
    outermost_missing = dir;
    if (dir == dir.parent_path()) break;
  }
  if (outermost_missing.empty()) return std::nullopt;
  std::error_code error;
  fs::create_directories(parent, error);
  check(!error, parent.string(), ": cannot create the directory for --out: ", error.message());
  return outermost_missing;
}

std::string megabytes(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f MB", static_cast<double>(bytes) / 1e6);
  return text;
}

// The next document of `reader` as tokens (+ EOS) and, for chat stores (`chat` set), its loss
// mask; false at the end of the input. Chat errors are prefixed with the file and line.
bool next_document(DocumentReader& reader, const Tokenizer& tokenizer, const ChatTemplate* chat,
                   std::vector<int32_t>& ids, std::vector<uint8_t>& mask) {
  ids.clear();
  mask.clear();
  if (chat == nullptr) {
    std::string text;
    if (!reader.next(text)) return false;
    tokenizer.encode_ordinary_append(text, ids);
    ids.push_back(tokenizer.eos_id());
    return true;
  }
  nlohmann::ordered_json record;
  if (!reader.next_json(record)) return false;
  RenderedChat rendered;
  try {
    rendered = chat->render(parse_chat_record(record));
  } catch (const Error& e) {
    fail(reader.path(), ":", reader.line_number(), ": ", e.what());
  }
  check(std::find(rendered.loss_mask.begin(), rendered.loss_mask.end(), 1) != rendered.loss_mask.end(),
        reader.path(), ":", reader.line_number(), ": the conversation has no assistant message (nothing to train on)");
  ids = std::move(rendered.tokens);
  mask = std::move(rendered.loss_mask);
  ids.push_back(tokenizer.eos_id());
  mask.push_back(0);
  return true;
}

// Tokenises every input into `writer`, updating `report` and the progress bar.
void write_documents(const StoreBuildOptions& options, const Tokenizer& tokenizer, TokenStoreWriter& writer,
                     StoreBuildReport& report) {
  int64_t total_bytes = 0;
  for (const auto& input : options.inputs) total_bytes += static_cast<int64_t>(fs::file_size(input));
  ProgressBar progress("data build", total_bytes, options.progress);
  std::optional<ChatTemplate> chat;
  if (options.kind == "chat") {
    try {
      chat.emplace(tokenizer);
    } catch (const Error& e) {
      fail(options.tokenizer_dir, ": ", e.what());
    }
  }
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;
  int64_t done_bytes = 0;
  for (const auto& input : options.inputs) {
    DocumentReader reader(input);
    while (next_document(reader, tokenizer, chat ? &*chat : nullptr, ids, mask)) {
      writer.append_document(ids, chat ? &mask : nullptr);
      report.loss_tokens += std::count(mask.begin(), mask.end(), 1);
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
  check(kind == "text" || kind == "chat", "--kind \"", kind, "\" is not a store kind (accepted: text, chat)");
  check(!inputs.empty(), "--input: at least one input file is required");
  for (const auto& input : inputs) {
    check(fs::is_regular_file(input), input, ": input file not found");
    check(is_supported_document_file(input), input, ": unsupported input (expected .jsonl or .txt)");
    check(kind != "chat" || fs::path(input).extension() == ".jsonl", input, ": --kind chat reads .jsonl ",
          "conversations (one {\"messages\": [...], \"tools\": [...]} object per line)");
  }
  check(!out.empty(), "--out: an output path is required");
  check(!fs::exists(out), out, ": already exists (choose a new --out; stores are never overwritten)");
  check(flush_tokens > 0, "flush_tokens (", flush_tokens, ") must be positive");
}

Json StoreBuildReport::to_json() const {
  Json json = {{"kind", kind},         {"documents", documents}, {"tokens", tokens}, {"input_bytes", input_bytes},
               {"seconds", seconds},   {"tokenizer_hash", tokenizer_hash}};
  if (kind == "chat") json["loss_tokens"] = loss_tokens;
  return json;
}

StoreBuildReport build_store(const StoreBuildOptions& options) {
  options.validate();
  const auto start = std::chrono::steady_clock::now();
  const Tokenizer tokenizer = Tokenizer::load(options.tokenizer_dir);
  check(tokenizer.eos_id() >= 0, options.tokenizer_dir, ": the tokenizer has no EOS token (tokenizer_config.json ",
        "eos_token or a \"[EOS]\" special token), needed to end each document");
  StoreBuildReport report;
  report.kind = options.kind;
  report.tokenizer_hash = tokenizer.hash();
  const std::string temporary = options.out + ".tmp." + std::to_string(::getpid());
  const std::optional<fs::path> created = create_missing_parents(options.out);
  std::remove(temporary.c_str());
  try {
    TokenStoreWriterOptions writer_options;
    writer_options.vocab_size = tokenizer.vocab_size();
    writer_options.tokenizer_hash = tokenizer.hash();
    writer_options.flush_tokens = options.flush_tokens;
    writer_options.with_loss_mask = options.kind == "chat";
    TokenStoreWriter writer(temporary, writer_options);
    write_documents(options, tokenizer, writer, report);
    writer.finish();
    fs::rename(temporary, options.out);
  } catch (...) {
    std::remove(temporary.c_str());
    std::error_code ignored;
    if (created) fs::remove_all(*created, ignored);
    throw;
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace k2f::data
