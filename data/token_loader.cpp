#include "data/token_loader.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"

namespace k2f::data {
namespace {

constexpr const char* kStateKind = "k2forge.token_loader";
constexpr int64_t kStateVersion = 1;

std::vector<std::unique_ptr<TokenStore>> open_stores(const LoaderOptions& options) {
  options.validate();
  std::vector<std::unique_ptr<TokenStore>> stores;
  for (const auto& path : options.paths) {
    auto store = std::make_unique<TokenStore>(path);
    check(options.expected_vocab_size <= 0 || store->vocab_size() <= options.expected_vocab_size, path,
          ": vocab_size ", store->vocab_size(), " exceeds the model's vocabulary (", options.expected_vocab_size,
          "): the store was made with another tokenizer");
    check(options.expected_tokenizer_hash.empty() || store->tokenizer_hash() == options.expected_tokenizer_hash, path,
          ": made with tokenizer ", store->tokenizer_hash(), ", expected ", options.expected_tokenizer_hash,
          " (rebuild the store with this run's tokenizer)");
    check(store->num_tokens() >= options.seq_len + 1, path, ": ", store->num_tokens(),
          " tokens, fewer than data.seq_len + 1 (", options.seq_len + 1, "): no sequence fits");
    stores.push_back(std::move(store));
  }
  return stores;
}

std::vector<int64_t> windows_of(const std::vector<std::unique_ptr<TokenStore>>& stores, int64_t seq_len) {
  std::vector<int64_t> windows;
  for (const auto& store : stores) windows.push_back(store->num_tokens() / (seq_len + 1));
  return windows;
}

template <typename T>
T state_field(const Json& state, const char* name) {
  check(state.contains(name), "loader state: field \"", name, "\" is missing");
  try {
    return state[name].get<T>();
  } catch (const Json::exception&) {
    fail("loader state: field \"", name, "\" has the wrong type: ", state[name].dump());
  }
}

template <typename T>
void check_same(const Json& state, const char* name, const T& current) {
  const T saved = state_field<T>(state, name);
  check(saved == current, "loader state: ", name, " was ", Json(saved).dump(), " when saved, now ",
        Json(current).dump(), " (a run resumes with the data settings it started with)");
}

}  // namespace

void LoaderOptions::validate() const {
  check(!paths.empty(), "data.paths: at least one token store is required");
  check(weights.empty() || weights.size() == paths.size(), "data.weights has ", weights.size(),
        " entries for ", paths.size(), " stores (data.paths)");
  double sum = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    check(std::isfinite(weights[i]) && weights[i] >= 0, "data.weights[", i, "] (", weights[i],
          ") must be finite and >= 0");
    sum += weights[i];
  }
  check(weights.empty() || sum > 0, "data.weights must not all be zero");
  check(seq_len > 0, "data.seq_len (", seq_len, ") must be positive");
  check(global_batch_size > 0, "data.global_batch_size (", global_batch_size, ") must be positive");
  check(dp_size > 0, "data.dp_size (", dp_size, ") must be positive");
  check(dp_rank >= 0 && dp_rank < dp_size, "data.dp_rank (", dp_rank, ") must be in [0, data.dp_size (", dp_size,
        "))");
  check(global_batch_size % dp_size == 0, "data.dp_size (", dp_size, ") must divide data.global_batch_size (",
        global_batch_size, ")");
  check(prefetch_batches >= 0, "data.prefetch_batches (", prefetch_batches, ") must be >= 0");
  check(expected_vocab_size >= 0, "data.expected_vocab_size (", expected_vocab_size, ") must be >= 0");
}

TokenLoader::TokenLoader(const LoaderOptions& options)
    : options_(options),
      stores_(open_stores(options_)),
      sampler_(windows_of(stores_, options_.seq_len), options_.weights, options_.seed),
      per_rank_(options_.global_batch_size / options_.dp_size) {
  capacity_ = static_cast<size_t>(std::max<int64_t>(1, options_.prefetch_batches * per_rank_));
}

TokenLoader::~TokenLoader() { stop_thread(); }

int64_t TokenLoader::global_index(int64_t k) const {
  return (k / per_rank_) * options_.global_batch_size + options_.dp_rank * per_rank_ + k % per_rank_;
}

void TokenLoader::fill_positions(const TokenStore& store, int64_t start, Sequence& sequence) const {
  const int64_t length = options_.seq_len + 1;
  sequence.positions.resize(length);
  if (!options_.mask_document_boundaries) {
    for (int64_t t = 0; t < length; ++t) sequence.positions[t] = t;
    return;
  }
  sequence.segments.resize(length);
  const auto& offsets = store.doc_offsets();
  auto doc_end = std::upper_bound(offsets.begin(), offsets.end(), start);  // start of the next document
  int64_t segment = 0, position = 0;
  for (int64_t t = 0; t < length; ++t, ++position) {
    if (start + t == *doc_end) {
      ++segment;
      position = 0;
      ++doc_end;
    }
    sequence.positions[t] = position;
    sequence.segments[t] = segment;
  }
}

TokenLoader::Sequence TokenLoader::produce(int64_t k) {
  const SequencePick pick = sampler_.pick(global_index(k));
  const TokenStore& store = *stores_[pick.store];
  const int64_t length = options_.seq_len + 1, start = pick.window * length;
  Sequence sequence;
  std::vector<int32_t> raw(length);
  store.read_tokens(start, length, raw.data());
  sequence.tokens.resize(length);
  for (int64_t t = 0; t < length; ++t) {
    check(raw[t] >= 0 && raw[t] < store.vocab_size(), store.path(), ": token id ", raw[t], " at position ", start + t,
          " is outside the store's vocabulary [0, ", store.vocab_size(), ")");
    sequence.tokens[t] = raw[t];
  }
  sequence.loss_mask.assign(length, 1.0f);
  if (store.has_loss_mask()) {
    std::vector<uint8_t> mask(length);
    store.read_loss_mask(start, length, mask.data());
    for (int64_t t = 0; t < length; ++t) sequence.loss_mask[t] = mask[t] ? 1.0f : 0.0f;
  }
  fill_positions(store, start, sequence);
  return sequence;
}

TokenBatch TokenLoader::next(int64_t num_sequences) {
  check(num_sequences > 0, "TokenLoader::next: num_sequences (", num_sequences, ") must be positive");
  const int64_t length = options_.seq_len + 1;
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  TokenBatch batch;
  batch.tokens_BT = torch::empty({num_sequences, length}, i64);
  batch.positions_BT = torch::empty({num_sequences, length}, i64);
  batch.loss_mask_BT = torch::empty({num_sequences, length}, torch::TensorOptions().dtype(torch::kFloat32));
  if (options_.mask_document_boundaries) batch.segment_ids_BT = torch::empty({num_sequences, length}, i64);
  for (int64_t b = 0; b < num_sequences; ++b) {
    Sequence sequence = options_.prefetch_batches > 0 ? take_prefetched() : produce(consumed_);
    if (sequence.error) std::rethrow_exception(sequence.error);
    const size_t bytes = static_cast<size_t>(length) * sizeof(int64_t);
    std::memcpy(batch.tokens_BT.data_ptr<int64_t>() + b * length, sequence.tokens.data(), bytes);
    std::memcpy(batch.positions_BT.data_ptr<int64_t>() + b * length, sequence.positions.data(), bytes);
    std::memcpy(batch.loss_mask_BT.data_ptr<float>() + b * length, sequence.loss_mask.data(), length * sizeof(float));
    if (options_.mask_document_boundaries)
      std::memcpy(batch.segment_ids_BT.data_ptr<int64_t>() + b * length, sequence.segments.data(), bytes);
    ++consumed_;
  }
  return batch;
}

// The queue front is always sequence consumed_: the producer starts at consumed_ and restore()
// restarts it there. A producer error travels in the queue and is rethrown, keeping consumed_.
TokenLoader::Sequence TokenLoader::take_prefetched() {
  if (!thread_.joinable()) start_thread();
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return !queue_.empty(); });
  if (queue_.front().error) return queue_.front();
  Sequence sequence = std::move(queue_.front());
  queue_.pop_front();
  changed_.notify_all();
  return sequence;
}

void TokenLoader::start_thread() {
  stop_ = false;
  produced_ = consumed_;
  queue_.clear();
  thread_ = std::thread([this] { producer_loop(); });
}

void TokenLoader::stop_thread() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
  queue_.clear();
}

void TokenLoader::producer_loop() {
  quiet_hdf5_errors();
  while (true) {
    int64_t k = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stop_ || queue_.size() < capacity_; });
      if (stop_) return;
      k = produced_;
    }
    Sequence sequence;
    try {
      sequence = produce(k);
    } catch (...) {
      sequence.error = std::current_exception();
    }
    const bool failed = static_cast<bool>(sequence.error);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stop_) return;
      queue_.push_back(std::move(sequence));
      ++produced_;
    }
    changed_.notify_all();
    if (failed) return;
  }
}

Json TokenLoader::store_fingerprints() const {
  Json stores = Json::array();
  for (const auto& store : stores_)
    stores.push_back({{"num_tokens", store->num_tokens()}, {"tokenizer_hash", store->tokenizer_hash()}});
  return stores;
}

Json TokenLoader::state() const {
  return {{"kind", kStateKind},
          {"version", kStateVersion},
          {"sequences_consumed", consumed_},
          {"next_global_index", global_index(consumed_)},
          {"seed", options_.seed},
          {"seq_len", options_.seq_len},
          {"global_batch_size", options_.global_batch_size},
          {"dp_rank", options_.dp_rank},
          {"dp_size", options_.dp_size},
          {"weights", options_.weights},
          {"stores", store_fingerprints()}};
}

void TokenLoader::restore(const Json& state) {
  check(state.is_object() && state.value("kind", "") == kStateKind, "loader state: expected an object with kind \"",
        kStateKind, "\", got ", state.dump().substr(0, 80));
  check_same(state, "version", kStateVersion);
  check_same(state, "seed", options_.seed);
  check_same(state, "seq_len", options_.seq_len);
  check_same(state, "global_batch_size", options_.global_batch_size);
  check_same(state, "weights", options_.weights);
  check(state_field<Json>(state, "stores") == store_fingerprints(), "loader state: the stores differ from the saved ",
        "ones (saved ", state["stores"].dump(), ", now ", store_fingerprints().dump(), ")");
  const auto saved = state_field<int64_t>(state, "sequences_consumed");
  const auto saved_dp_size = state_field<int64_t>(state, "dp_size");
  const auto saved_dp_rank = state_field<int64_t>(state, "dp_rank");
  check(saved >= 0 && saved_dp_size > 0, "loader state: sequences_consumed ", saved, " / dp_size ", saved_dp_size);
  int64_t position = saved;
  if (saved_dp_size != options_.dp_size || saved_dp_rank != options_.dp_rank) {
    const int64_t saved_per_rank = options_.global_batch_size / saved_dp_size;
    check(saved % saved_per_rank == 0, "loader state: saved mid-step (", saved, " sequences, ", saved_per_rank,
          " per step per rank) under dp_size ", saved_dp_size, "; it can resume only with the same dp layout");
    position = saved / saved_per_rank * per_rank_;
  }
  stop_thread();
  consumed_ = position;
}

}  // namespace k2f::data
