// Packed, deterministic, resumable token batches for training. The global order of sequences
// comes from SequenceSampler (seed, epoch); each optimizer step takes global_batch_size (G)
// consecutive sequences of it, and dp rank r owns the block [r*G/dp, (r+1)*G/dp) of every
// step, so the k-th sequence of rank r is global index (k / (G/dp))*G + r*(G/dp) + k % (G/dp).
// Batches depend only on that index: next(2) twice equals next(4), prefetching (a background
// thread filling a bounded queue) changes nothing, and state()/restore() resume exactly.
// Legend: B sequences in the batch, T = seq_len + 1 tokens per sequence.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <torch/types.h>

#include "base/json_io.h"
#include "data/sequence_sampler.h"
#include "data/token_store.h"

namespace k2f::data {

struct LoaderOptions {
  std::vector<std::string> paths;      // HDF5 stores
  std::vector<double> weights;         // mixing weights (empty: proportional to size)
  int64_t seq_len = 512;               // each sample has seq_len + 1 tokens
  int64_t global_batch_size = 8;       // sequences per optimizer step over all dp ranks
  int64_t dp_rank = 0, dp_size = 1;
  uint64_t seed = 1234;
  bool mask_document_boundaries = false;
  int64_t prefetch_batches = 2;        // queue depth in units of G/dp sequences; 0: no thread
  int64_t expected_vocab_size = 0;     // >0: every store's vocab_size must be <= this (the model's)
  std::string expected_tokenizer_hash; // non-empty: every store's tokenizer_hash must equal it
  void validate() const;               // "data.seq_len (0) must be positive" style
};

struct TokenBatch {
  torch::Tensor tokens_BT;       // int64 [B, T]
  torch::Tensor positions_BT;    // int64 [B, T]: 0.. per row, restarting at each document when masking
  torch::Tensor segment_ids_BT;  // int64 [B, T]: document index within the row; undefined when not masking
  torch::Tensor loss_mask_BT;    // float [B, T]: 1 where the token counts as a target (store loss_mask or ones)
};

class TokenLoader {
 public:
  explicit TokenLoader(const LoaderOptions& options);
  ~TokenLoader();
  TokenLoader(const TokenLoader&) = delete;
  TokenLoader& operator=(const TokenLoader&) = delete;

  TokenBatch next(int64_t num_sequences);  // the next sequences of THIS rank's stream
  Json state() const;                      // exact position (to save in checkpoints)
  void restore(const Json& state);         // continue exactly from a saved position
  int64_t sequences_consumed() const { return consumed_; }

  // Global-order index of this rank's k-th sequence.
  int64_t global_index(int64_t k) const;
  // Sequences in one epoch of the global order (all ranks together).
  int64_t epoch_length() const { return sampler_.epoch_length(); }
  const std::vector<std::unique_ptr<TokenStore>>& stores() const { return stores_; }

 private:
  struct Sequence {
    std::vector<int64_t> tokens, positions, segments;
    std::vector<float> loss_mask;
    std::exception_ptr error;
  };
  Sequence produce(int64_t k);
  void fill_positions(const TokenStore& store, int64_t start, Sequence& sequence) const;
  Sequence take_prefetched();
  void start_thread();
  void stop_thread();
  void producer_loop();
  Json store_fingerprints() const;

  LoaderOptions options_;
  std::vector<std::unique_ptr<TokenStore>> stores_;
  SequenceSampler sampler_;
  int64_t per_rank_ = 1;
  int64_t consumed_ = 0;

  // Prefetch: the producer fills queue_ with sequences produced_ - queue_.size() .. produced_ - 1.
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Sequence> queue_;
  int64_t produced_ = 0;
  size_t capacity_ = 1;
  bool stop_ = false;
};

}  // namespace k2f::data
