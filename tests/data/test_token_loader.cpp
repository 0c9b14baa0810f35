// Tests of data/token_loader.cpp: batches depend only on the sequence index (next(2) twice ==
// next(4); prefetch on == off), dp ranks own disjoint blocks whose union is the single-rank
// stream, an epoch visits every window once, state()/restore() resume exactly (prefetch on,
// also across dp layouts), document masking gives the hand-computed positions and segments,
// and bad stores or settings fail with the file and value named.
#include <gtest/gtest.h>

#include <set>

#include "data/raw_hdf5.h"
#include "data/token_loader.h"
#include "data/token_store_writer.h"
#include "test_util.h"

namespace k2f::data {
namespace {

using testing::expect_error;
using testing::ScratchDir;

// A store whose token at position p is base + p, so a sequence tells where it came from.
std::string identity_store(const std::string& path, const std::vector<int64_t>& doc_lengths, int32_t base = 0,
                           int64_t vocab = 100000, bool with_mask = false) {
  TokenStoreWriterOptions options;
  options.vocab_size = vocab;
  options.tokenizer_hash = "sha256:test";
  options.chunk_tokens = 128;
  options.with_loss_mask = with_mask;
  TokenStoreWriter writer(path, options);
  int32_t next = base;
  for (int64_t length : doc_lengths) {
    std::vector<int32_t> doc(length);
    std::vector<uint8_t> mask(length);
    for (int64_t i = 0; i < length; ++i) doc[i] = next++, mask[i] = static_cast<uint8_t>(i % 3 != 0);
    writer.append_document(doc, with_mask ? &mask : nullptr);
  }
  writer.finish();
  return path;
}

std::vector<int64_t> lengths(int count, int64_t length) { return std::vector<int64_t>(count, length); }

LoaderOptions options_for(const std::vector<std::string>& paths, int64_t seq_len, int64_t global_batch) {
  LoaderOptions o;
  o.paths = paths;
  o.seq_len = seq_len;
  o.global_batch_size = global_batch;
  o.seed = 99;
  o.prefetch_batches = 0;
  return o;
}

// Rows of a batch, each row as a vector, with positions and segments appended for comparison.
std::vector<std::vector<int64_t>> rows(const TokenBatch& batch) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t b = 0; b < batch.tokens_BT.size(0); ++b) {
    std::vector<int64_t> row;
    for (const auto& t : {batch.tokens_BT, batch.positions_BT, batch.segment_ids_BT}) {
      if (!t.defined()) continue;
      const auto r = t[b].contiguous();
      row.insert(row.end(), r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel());
    }
    const auto m = batch.loss_mask_BT[b].contiguous();
    for (int64_t i = 0; i < m.numel(); ++i) row.push_back(static_cast<int64_t>(m.data_ptr<float>()[i] * 10));
    out.push_back(std::move(row));
  }
  return out;
}

std::vector<std::vector<int64_t>> take(TokenLoader& loader, const std::vector<int64_t>& sizes) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t n : sizes) {
    const auto r = rows(loader.next(n));
    out.insert(out.end(), r.begin(), r.end());
  }
  return out;
}

class TokenLoaderTest : public ::testing::Test {
 protected:
  ScratchDir dir{"loader"};
  std::string store_a = identity_store(dir / "a.h5", {30, 7, 50, 1, 90, 13, 200, 44, 65});
  std::string store_b = identity_store(dir / "b.h5", lengths(20, 21), 50000);
};

TEST_F(TokenLoaderTest, BatchShapesAndTypes) {
  auto o = options_for({store_a}, 15, 4);
  TokenLoader loader(o);
  const auto batch = loader.next(3);
  EXPECT_EQ(batch.tokens_BT.sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_EQ(batch.tokens_BT.scalar_type(), torch::kInt64);
  EXPECT_EQ(batch.positions_BT.scalar_type(), torch::kInt64);
  EXPECT_EQ(batch.loss_mask_BT.scalar_type(), torch::kFloat32);
  EXPECT_FALSE(batch.segment_ids_BT.defined());
  EXPECT_EQ(loader.sequences_consumed(), 3);
  // Each row is one window: consecutive tokens starting at a multiple of 16.
  for (int64_t b = 0; b < 3; ++b) {
    const int64_t first = batch.tokens_BT[b][0].item<int64_t>();
    EXPECT_EQ(first % 16, 0);
    EXPECT_TRUE(torch::equal(batch.tokens_BT[b], torch::arange(first, first + 16, torch::kInt64)));
    EXPECT_TRUE(torch::equal(batch.positions_BT[b], torch::arange(0, 16, torch::kInt64)));
  }
}

TEST_F(TokenLoaderTest, CallSizesAndPrefetchDoNotChangeTheStream) {
  for (bool mask : {false, true}) {
    auto o = options_for({store_a, store_b}, 15, 8);
    o.mask_document_boundaries = mask;
    TokenLoader reference(o);
    const auto expected = take(reference, {60});
    TokenLoader split(o);
    EXPECT_EQ(take(split, {2, 2, 4, 1, 7, 44}), expected);
    o.prefetch_batches = 3;
    TokenLoader prefetched(o);
    EXPECT_EQ(take(prefetched, {5, 5, 50}), expected);
  }
}

TEST_F(TokenLoaderTest, EpochVisitsEveryWindowOnce) {
  auto o = options_for({store_a}, 15, 4);
  TokenLoader loader(o);
  const int64_t windows = loader.stores()[0]->num_tokens() / 16;
  ASSERT_EQ(loader.epoch_length(), windows);
  std::set<int64_t> starts;
  const auto batch = loader.next(windows);
  for (int64_t b = 0; b < windows; ++b) starts.insert(batch.tokens_BT[b][0].item<int64_t>());
  EXPECT_EQ(static_cast<int64_t>(starts.size()), windows);
  EXPECT_EQ(*starts.rbegin(), (windows - 1) * 16);
}

TEST_F(TokenLoaderTest, DpRanksOwnDisjointBlocksWhoseUnionIsTheSingleRankStream) {
  const int64_t G = 8, steps = 5;
  auto o = options_for({store_a, store_b}, 15, G);
  TokenLoader single(o);
  const auto stream = take(single, {G * steps});
  for (int64_t dp : {2, 4, 8}) {
    std::vector<std::vector<std::vector<int64_t>>> per_rank;
    for (int64_t r = 0; r < dp; ++r) {
      auto rank_options = o;
      rank_options.dp_rank = r;
      rank_options.dp_size = dp;
      rank_options.prefetch_batches = 2;
      TokenLoader loader(rank_options);
      per_rank.push_back(take(loader, std::vector<int64_t>(steps, G / dp)));
    }
    for (int64_t s = 0; s < steps; ++s)
      for (int64_t r = 0; r < dp; ++r)
        for (int64_t j = 0; j < G / dp; ++j)
          ASSERT_EQ(per_rank[r][s * (G / dp) + j], stream[s * G + r * (G / dp) + j]) << "dp " << dp << " rank " << r;
  }
}

TEST_F(TokenLoaderTest, RestoreResumesExactlyWithPrefetch) {
  auto o = options_for({store_a, store_b}, 15, 6);
  o.prefetch_batches = 2;
  o.mask_document_boundaries = true;
  TokenLoader first(o);
  take(first, {3, 3, 2});
  const Json saved = first.state();
  EXPECT_EQ(saved["sequences_consumed"], 8);
  const auto continued = take(first, {4, 6, 50});  // crosses the epoch end
  TokenLoader resumed(o);
  resumed.restore(Json::parse(saved.dump()));
  EXPECT_EQ(take(resumed, {4, 6, 50}), continued);
  first.restore(saved);  // rewinding a running loader
  EXPECT_EQ(take(first, {60}), continued);
}

TEST_F(TokenLoaderTest, RestoreAcrossDpLayoutsAtStepBoundaries) {
  auto o = options_for({store_a}, 15, 8);
  o.prefetch_batches = 1;
  TokenLoader single(o);
  const auto stream = take(single, {8 * 4});
  auto rank1_of_2 = o;
  rank1_of_2.dp_rank = 1, rank1_of_2.dp_size = 2;
  TokenLoader saver(rank1_of_2);
  take(saver, {4, 4});  // two steps
  auto rank3_of_4 = o;
  rank3_of_4.dp_rank = 3, rank3_of_4.dp_size = 4;
  TokenLoader resumed(rank3_of_4);
  resumed.restore(saver.state());
  EXPECT_EQ(resumed.sequences_consumed(), 4);
  const auto next = take(resumed, {2});
  EXPECT_EQ(next[0], stream[2 * 8 + 6]);
  EXPECT_EQ(next[1], stream[2 * 8 + 7]);
  take(saver, {1});  // mid-step
  expect_error([&] { resumed.restore(saver.state()); }, {"saved mid-step", "same dp layout"});
}

TEST_F(TokenLoaderTest, RestoreRejectsOtherSettings) {
  auto o = options_for({store_a}, 15, 8);
  TokenLoader loader(o);
  auto other = o;
  other.seed = 5;
  TokenLoader different(other);
  expect_error([&] { different.restore(loader.state()); }, {"seed was 99 when saved, now 5"});
  auto longer = o;
  longer.seq_len = 31;
  TokenLoader longer_loader(longer);
  expect_error([&] { longer_loader.restore(loader.state()); }, {"seq_len was 15"});
  expect_error([&] { loader.restore(Json::object()); }, {"loader state", "kind"});
}

TEST_F(TokenLoaderTest, DocumentMaskingRestartsPositionsAndCountsSegments) {
  // Documents of 3, 5, 2, 6 tokens; windows of 8: [0,8) holds doc0 + doc1, [8,16) doc2 + doc3.
  const std::string path = identity_store(dir / "docs.h5", {3, 5, 2, 6});
  auto o = options_for({path}, 7, 1);
  o.mask_document_boundaries = true;
  TokenLoader loader(o);
  const auto batch = loader.next(2);
  const std::map<int64_t, std::pair<std::vector<int64_t>, std::vector<int64_t>>> expected = {
      {0, {{0, 1, 2, 0, 1, 2, 3, 4}, {0, 0, 0, 1, 1, 1, 1, 1}}},
      {8, {{0, 1, 0, 1, 2, 3, 4, 5}, {0, 0, 1, 1, 1, 1, 1, 1}}}};
  for (int64_t b = 0; b < 2; ++b) {
    const auto& [positions, segments] = expected.at(batch.tokens_BT[b][0].item<int64_t>());
    EXPECT_TRUE(torch::equal(batch.positions_BT[b], torch::tensor(positions, torch::kInt64)));
    EXPECT_TRUE(torch::equal(batch.segment_ids_BT[b], torch::tensor(segments, torch::kInt64)));
  }
  // A window that starts inside a document counts positions from the row start.
  const std::string path2 = identity_store(dir / "docs2.h5", {5, 11});
  auto o2 = options_for({path2}, 7, 1);
  o2.mask_document_boundaries = true;
  TokenLoader loader2(o2);
  const auto batch2 = loader2.next(2);
  for (int64_t b = 0; b < 2; ++b) {
    const bool first_window = batch2.tokens_BT[b][0].item<int64_t>() == 0;
    const std::vector<int64_t> positions = first_window ? std::vector<int64_t>{0, 1, 2, 3, 4, 0, 1, 2}
                                                        : std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7};
    EXPECT_TRUE(torch::equal(batch2.positions_BT[b], torch::tensor(positions, torch::kInt64)));
  }
}

TEST_F(TokenLoaderTest, LossMaskComesFromTheStore) {
  const std::string path = identity_store(dir / "mask.h5", {10, 10, 12}, 0, 1000, true);
  TokenLoader loader(options_for({path}, 7, 1));
  const auto batch = loader.next(4);
  for (int64_t b = 0; b < 4; ++b)
    for (int64_t t = 0; t < 8; ++t) {
      const int64_t p = batch.tokens_BT[b][t].item<int64_t>();
      const int64_t in_doc = p < 10 ? p : p < 20 ? p - 10 : p - 20;
      EXPECT_EQ(batch.loss_mask_BT[b][t].item<float>(), in_doc % 3 != 0 ? 1.0f : 0.0f) << "token " << p;
    }
}

TEST_F(TokenLoaderTest, MixingWeightsSetTheShareOfEachStore) {
  auto o = options_for({store_a, store_b}, 15, 4);
  o.weights = {1.0, 3.0};
  TokenLoader loader(o);
  const int64_t n = loader.epoch_length() * 2;
  const auto batch = loader.next(n);
  const int64_t from_b = (batch.tokens_BT.select(1, 0) >= 50000).sum().item<int64_t>();
  const int64_t expected_b = 2 * ((loader.epoch_length() * 3 + 3) / 4);
  EXPECT_NEAR(from_b, expected_b, 2);
}

TEST_F(TokenLoaderTest, BadStoresAndSettingsAreNamed) {
  auto o = options_for({store_a}, 15, 8);
  o.expected_vocab_size = 50;
  expect_error([&] { TokenLoader loader(o); }, {"a.h5", "vocab_size 100000 exceeds the model's vocabulary (50)"});
  o = options_for({store_a}, 15, 8);
  o.expected_tokenizer_hash = "sha256:other";
  expect_error([&] { TokenLoader loader(o); }, {"a.h5", "made with tokenizer sha256:test, expected sha256:other"});
  o = options_for({store_a}, 100000, 8);
  expect_error([&] { TokenLoader loader(o); }, {"a.h5", "fewer than data.seq_len + 1"});
  o = options_for({store_a}, 0, 8);
  expect_error([&] { TokenLoader loader(o); }, {"data.seq_len (0) must be positive"});
  o = options_for({store_a}, 15, 6);
  o.dp_size = 4;
  expect_error([&] { TokenLoader loader(o); }, {"data.dp_size (4) must divide data.global_batch_size (6)"});
  o = options_for({store_a, store_b}, 15, 8);
  o.weights = {1.0};
  expect_error([&] { TokenLoader loader(o); }, {"data.weights has 1 entries for 2 stores"});

  testing::RawStore raw;
  raw.tokens = {1, 2, 3, 150, 4, 5, 6, 7};
  raw.doc_offsets = {0, 8};
  raw.vocab_size = 100;
  testing::write_raw_store(dir / "bad_ids.h5", raw);
  for (int64_t prefetch : {0, 2}) {
    auto bad = options_for({dir / "bad_ids.h5"}, 7, 1);
    bad.prefetch_batches = prefetch;
    TokenLoader loader(bad);
    expect_error([&] { loader.next(1); }, {"bad_ids.h5", "token id 150 at position 3", "[0, 100)"});
    EXPECT_EQ(loader.sequences_consumed(), 0);
  }
}

}  // namespace
}  // namespace k2f::data
