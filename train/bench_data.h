// `k2forge bench tokenizer` and `k2forge bench data`: encode throughput (MB/s of UTF-8 text,
// one thread) on about 10 MB of English built by repeating the embedded corpus, and tokens/s
// delivered by the TokenLoader (with and without prefetch) from a store built from that corpus.
#pragma once

#include <cstdint>
#include <string>

#include "base/json_io.h"

namespace k2f::train {

struct DataBenchOptions {
  std::string tokenizer_dir = "assets/tokenizer";
  std::string corpus = "assets/corpus/python_docs_train.jsonl";
  double megabytes = 10;       // tokenizer: text size
  int64_t seq_len = 512;       // data: loader settings
  int64_t batch = 32;
  double min_seconds = 2;      // data: time per measured configuration
  void validate() const;
};

Json bench_tokenizer(const DataBenchOptions& options);
Json bench_data(const DataBenchOptions& options);

}  // namespace k2f::train
