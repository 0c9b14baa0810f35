// A tiny training setup for trainer tests: random-token HDF5 stores and TrainOptions for a small
// K2-architecture model, small enough that a few steps take well under a second.
#pragma once

#include <random>

#include "data/token_store_writer.h"
#include "test_util.h"
#include "tests/model/tiny_config.h"
#include "train/train_options.h"

namespace k2f::testing {

// Documents of random length (5..60) with token ids in [3, vocab), three quarters of them from
// [3, 11): a skewed unigram distribution a few steps can learn, so "the loss falls" is a real
// signal rather than noise around the entropy of uniform tokens.
inline std::string write_random_store(const std::string& path, int64_t vocab, int documents, uint64_t seed) {
  data::TokenStoreWriterOptions options;
  options.vocab_size = vocab;
  options.tokenizer_hash = "test-tokenizer";
  data::TokenStoreWriter writer(path, options);
  std::mt19937_64 rng(seed);
  for (int d = 0; d < documents; ++d) {
    std::vector<int32_t> tokens(5 + rng() % 56);
    for (auto& t : tokens) t = static_cast<int32_t>(3 + rng() % (rng() % 4 == 0 ? vocab - 3 : 8));
    writer.append_document(tokens);
  }
  writer.finish();
  return path;
}

inline train::TrainOptions tiny_train_options(const ScratchDir& dir, const std::string& run) {
  train::TrainOptions o;
  o.model = tiny_config();
  o.model.initializer_range = 0.05;
  o.run_dir = dir / run;
  o.steps = 6;
  o.seq_len = 16;
  o.global_batch_size = 4;
  o.micro_batch_size = 2;
  o.dtype = torch::kFloat32;
  o.lr = 3e-3;
  o.schedule.name = "cosine";
  o.schedule.warmup_steps = 2;
  o.checkpoint_interval = 3;
  o.checkpoint_keep = 2;
  o.tensorboard = false;
  o.peak_flops = 1e12;
  o.bias_update_rate = 1e-2;
  o.optimizer.newton_schulz_dtype = torch::kFloat32;
  const std::string store = dir / "store.h5";
  if (!std::filesystem::exists(store)) write_random_store(store, o.model.vocab_size, 80, 5);
  o.data_paths = {store};
  return o;
}

}  // namespace k2f::testing
