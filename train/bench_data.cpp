#include "train/bench_data.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "base/error.h"
#include "base/stopwatch.h"
#include "data/document_reader.h"
#include "data/store_builder.h"
#include "data/token_loader.h"
#include "data/tokenizer.h"

namespace k2f::train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;


// The corpus documents joined by blank lines, repeated until `bytes` long.
std::string repeated_corpus(const std::string& path, size_t bytes) {
  std::string corpus, text;
  data::DocumentReader reader(path);
  while (reader.next(text)) corpus += text + "\n\n";
  check(!corpus.empty(), path, ": no documents");
  std::string out;
  out.reserve(bytes + corpus.size());
  while (out.size() < bytes) out += corpus;
  return out;
}

// Tokens/s delivered by next(batch) over at least min_seconds.
Json measure_loader(const data::LoaderOptions& loader_options, const DataBenchOptions& options) {
  data::TokenLoader loader(loader_options);
  loader.next(options.batch);  // warm-up: opens chunk caches, starts the prefetch thread
  int64_t sequences = 0;
  const auto start = Clock::now();
  while (seconds_since(start) < options.min_seconds) {
    loader.next(options.batch);
    sequences += options.batch;
  }
  const double seconds = seconds_since(start);
  const double tokens = static_cast<double>(sequences * (options.seq_len + 1));
  return {{"prefetch_batches", loader_options.prefetch_batches}, {"sequences", sequences}, {"seconds", seconds},
          {"tokens_per_second", tokens / seconds}};
}

}  // namespace

void DataBenchOptions::validate() const {
  check(megabytes > 0, "--megabytes (", megabytes, ") must be positive");
  check(seq_len > 0, "--seq-len (", seq_len, ") must be positive");
  check(batch > 0, "--batch (", batch, ") must be positive");
  check(min_seconds > 0, "--seconds (", min_seconds, ") must be positive");
}

Json bench_tokenizer(const DataBenchOptions& options) {
  options.validate();
  const auto tokenizer = data::Tokenizer::load(options.tokenizer_dir);
  const std::string text = repeated_corpus(options.corpus, static_cast<size_t>(options.megabytes * 1e6));
  tokenizer.encode(text.substr(0, 100000));  // warm-up
  auto start = Clock::now();
  const auto ids = tokenizer.encode(text);
  const double encode_seconds = seconds_since(start);
  start = Clock::now();
  const std::string decoded = tokenizer.decode(ids);
  const double decode_seconds = seconds_since(start);
  check(decoded == text, "bench tokenizer: decode(encode(text)) differs from the text");
  const double megabytes = static_cast<double>(text.size()) / 1e6;
  return {{"benchmark", "tokenizer"},
          {"tokenizer", options.tokenizer_dir},
          {"tokenizer_hash", tokenizer.hash()},
          {"bytes", text.size()},
          {"tokens", ids.size()},
          {"bytes_per_token", static_cast<double>(text.size()) / static_cast<double>(ids.size())},
          {"encode_seconds", encode_seconds},
          {"encode_mb_per_s", megabytes / encode_seconds},
          {"decode_mb_per_s", megabytes / decode_seconds},
          {"threads", 1},
          {"round_trip_exact", true}};
}

Json bench_data(const DataBenchOptions& options) {
  options.validate();
  const fs::path dir = fs::temp_directory_path() / ("k2f-bench-data-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  try {
    data::StoreBuildOptions build;
    build.inputs = {options.corpus, options.corpus, options.corpus, options.corpus};
    build.tokenizer_dir = options.tokenizer_dir;
    build.out = (dir / "bench.h5").string();
    build.progress = false;
    const auto report = data::build_store(build);
    data::LoaderOptions loader;
    loader.paths = {build.out};
    loader.seq_len = options.seq_len;
    loader.global_batch_size = options.batch;
    loader.mask_document_boundaries = true;
    Json runs = Json::array();
    for (int64_t prefetch : {int64_t{2}, int64_t{0}}) {
      loader.prefetch_batches = prefetch;
      runs.push_back(measure_loader(loader, options));
    }
    fs::remove_all(dir);
    return {{"benchmark", "data"},
            {"store_tokens", report.tokens},
            {"build_seconds", report.seconds},
            {"build_tokens_per_second", static_cast<double>(report.tokens) / report.seconds},
            {"seq_len", options.seq_len},
            {"batch", options.batch},
            {"mask_document_boundaries", true},
            {"tokens_per_second", runs[0]["tokens_per_second"]},
            {"runs", runs}};
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
    throw;
  }
}

}  // namespace k2f::train
