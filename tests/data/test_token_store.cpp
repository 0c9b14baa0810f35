// Tests of data/token_store_writer.cpp and data/token_store.cpp: what is written reads back
// (through TokenStore and through the raw HDF5 C API), and each defective file fails on open or
// read with a message naming the file: not HDF5, truncated, corrupt chunks, missing or
// mistyped datasets and attributes, inconsistent offsets, an empty store.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "base/isolated_call.h"
#include "data/raw_hdf5.h"
#include "data/token_store.h"
#include "data/token_store_writer.h"
#include "test_util.h"

namespace k2f::data {
namespace {

using testing::expect_error;
using testing::RawStore;
using testing::ScratchDir;

struct Documents {
  std::vector<std::vector<int32_t>> docs;
  std::vector<int32_t> flat;
  std::vector<int64_t> offsets{0};
};

Documents random_documents(int count, int vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Documents d;
  for (int i = 0; i < count; ++i) {
    std::vector<int32_t> doc(1 + rng() % 300);
    for (auto& t : doc) t = static_cast<int32_t>(rng() % vocab);
    d.flat.insert(d.flat.end(), doc.begin(), doc.end());
    d.offsets.push_back(static_cast<int64_t>(d.flat.size()));
    d.docs.push_back(std::move(doc));
  }
  return d;
}

std::string write_store(const std::string& path, const Documents& d, int vocab, bool with_mask = false) {
  TokenStoreWriterOptions options;
  options.vocab_size = vocab;
  options.tokenizer_hash = "sha256:abc";
  options.chunk_tokens = 256;
  options.flush_tokens = 1000;  // many appends
  options.with_loss_mask = with_mask;
  TokenStoreWriter writer(path, options);
  for (const auto& doc : d.docs) {
    std::vector<uint8_t> mask(doc.size());
    for (size_t i = 0; i < doc.size(); ++i) mask[i] = static_cast<uint8_t>(doc[i] % 2);
    writer.append_document(doc, with_mask ? &mask : nullptr);
  }
  writer.finish();
  return path;
}

TEST(TokenStore, WrittenDocumentsReadBackExactly) {
  ScratchDir dir("store");
  const auto d = random_documents(200, 1000, 1);
  const std::string path = write_store(dir / "s.h5", d, 1000);
  EXPECT_EQ(testing::read_raw_dataset<int32_t>(path, "tokens", H5T_NATIVE_INT32), d.flat);
  EXPECT_EQ(testing::read_raw_dataset<int64_t>(path, "doc_offsets", H5T_NATIVE_INT64), d.offsets);
  EXPECT_EQ(testing::read_raw_int_attribute(path, "vocab_size"), 1000);
  EXPECT_EQ(testing::read_raw_int_attribute(path, "format_version"), 1);
  const TokenStore store(path);
  EXPECT_EQ(store.num_tokens(), static_cast<int64_t>(d.flat.size()));
  EXPECT_EQ(store.num_documents(), 200);
  EXPECT_EQ(store.vocab_size(), 1000);
  EXPECT_EQ(store.tokenizer_hash(), "sha256:abc");
  EXPECT_FALSE(store.has_loss_mask());
  EXPECT_EQ(store.doc_offsets(), d.offsets);
  EXPECT_EQ(store.read_tokens(0, store.num_tokens()), d.flat);
  EXPECT_EQ(store.read_tokens(777, 300), std::vector<int32_t>(d.flat.begin() + 777, d.flat.begin() + 1077));
}

TEST(TokenStore, LossMaskReadsBack) {
  ScratchDir dir("store-mask");
  const auto d = random_documents(20, 50, 2);
  const TokenStore store(write_store(dir / "m.h5", d, 50, true));
  ASSERT_TRUE(store.has_loss_mask());
  std::vector<uint8_t> mask(store.num_tokens());
  store.read_loss_mask(0, store.num_tokens(), mask.data());
  for (size_t i = 0; i < mask.size(); ++i) ASSERT_EQ(mask[i], d.flat[i] % 2);
}

TEST(TokenStore, WriterRejectsIdsOutsideTheVocabulary) {
  ScratchDir dir("store-vocab");
  TokenStoreWriterOptions options;
  options.vocab_size = 10;
  TokenStoreWriter writer(dir / "v.h5", options);
  expect_error([&] { writer.append_document({1, 2, 10}); }, {"document 0, token 2", "id 10", "[0, 10)"});
}

TEST(TokenStore, NotHdf5OrTruncatedOrCorruptFilesNameTheFile) {
  ScratchDir dir("store-bad");
  std::ofstream(dir / "text.h5") << "this is not an HDF5 file";
  expect_error([&] { TokenStore store(dir / "text.h5"); }, {"text.h5", "not an HDF5 file"});
  expect_error([&] { TokenStore store(dir / "absent.h5"); }, {"absent.h5", "not found"});

  const auto d = random_documents(300, 1000, 3);
  const std::string good = write_store(dir / "good.h5", d, 1000);
  const auto size = std::filesystem::file_size(good);
  std::filesystem::copy_file(good, dir / "truncated.h5");
  std::filesystem::resize_file(dir / "truncated.h5", size / 2);
  expect_error([&] { TokenStore store(dir / "truncated.h5"); }, {"truncated.h5"});

  std::filesystem::copy_file(good, dir / "corrupt.h5");
  {
    std::fstream file(dir / "corrupt.h5", std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(static_cast<std::streamoff>(size / 2));
    const std::string garbage(2048, '\xab');
    file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  expect_error([&] {
    TokenStore store(dir / "corrupt.h5");
    store.read_tokens(0, store.num_tokens());
  }, {"corrupt.h5"});
}

// Inputs found by fuzz/fuzz_token_store (kept in fuzz/regressions/token_store/): corrupt metadata
// makes libhdf5 ask for about 1 TB; the failed allocation must surface as an error naming the
// file, never as a crash or a half-open store.
// Two more made libhdf5 crash inside H5Dread (a compact /tokens storing no bytes, contiguous /tokens
// placed past the end of the file): the layout is now checked against the shape and the file
// size before anything is read, so they are plain errors (not faults contained in the probe).
TEST(TokenStore, FuzzFoundLayoutsThatCannotHoldTheirShapeAreRefusedBeforeReading) {
  const std::string regressions = std::string(K2F_SOURCE_DIR) + "/fuzz/regressions/token_store/";
  for (const auto probe : {StoreProbe::kChildProcess, StoreProbe::kNone}) {
    expect_error([&] { TokenStore(regressions + "compact_tokens_storing_no_bytes.h5", 5.0, probe); },
                 {"compact_tokens_storing_no_bytes.h5", "/tokens stores 0 bytes but its shape", "needs"});
    expect_error([&] { TokenStore(regressions + "contiguous_tokens_past_the_end_of_the_file.h5", 5.0, probe); },
                 {"contiguous_tokens_past_the_end_of_the_file.h5", "/tokens's data lies outside the file",
                  "file of 2100 bytes"});
  }
}

TEST(TokenStore, FuzzFoundCorruptFilesAreErrorsNamingTheFile) {
  const std::filesystem::path regressions = std::string(K2F_SOURCE_DIR) + "/fuzz/regressions/token_store";
  size_t inputs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(regressions)) {
    ++inputs;
    const std::string path = entry.path().string();
    expect_error([&] {
      TokenStore store(path);
      store.read_tokens(0, store.num_tokens());
    }, {entry.path().filename().string()});
  }
  EXPECT_GT(inputs, 0u) << regressions;
}

// A valid store of two documents, [1, 2] and [3, 4, 5]; returns its spec for variations.
RawStore write_two_documents(const std::filesystem::path& path) {
  RawStore store;
  store.tokens = {1, 2, 3, 4, 5};
  store.doc_offsets = {0, 2, 5};
  testing::write_raw_store(path, store);
  return store;
}

// libhdf5 1.10 can crash or hang on a corrupt file inside its own code (under ASan,
// fuzz/regressions/token_store/libhdf5_heap_overflow_in_H5O_msg_iterate.h5 overflows a heap buffer
// in H5Aexists; a release build reads past the buffer and reports a garbage format_version). The
// store is read first in a child; here the child hook makes that child die or hang on a valid
// store, so both outcomes are shown in every build.
TEST(TokenStore, ProbeThatCrashesOrHangsIsAnErrorNamingTheFile) {
  ScratchDir dir("store-probe");
  write_two_documents(dir / "ok.h5");
  set_isolated_child_hook([] { ::kill(::getpid(), SIGKILL); });
  expect_error([&] { TokenStore store(dir / "ok.h5"); }, {"ok.h5", "libhdf5 crashed", "k2forge data build"});
  set_isolated_child_hook([] {
    while (true) ::pause();
  });
  expect_error([&] { TokenStore store(dir / "ok.h5", 0.5); }, {"ok.h5", "still reading", "after 0.5 s"});
  set_isolated_child_hook(nullptr);
  EXPECT_EQ(TokenStore(dir / "ok.h5").num_documents(), 2);
}

TEST(TokenStore, StructuralDefectsAreNamed) {
  ScratchDir dir("store-defects");
  const RawStore ok = write_two_documents(dir / "ok.h5");
  EXPECT_EQ(TokenStore(dir / "ok.h5").num_documents(), 2);

  auto expect_defect = [&](const std::string& name, RawStore spec, std::initializer_list<std::string> fragments) {
    testing::write_raw_store(dir / name, spec);
    std::vector<std::string> all(fragments);
    all.push_back(name);
    try {
      TokenStore store(dir / name);
      ADD_FAILURE() << name << ": expected an error";
    } catch (const Error& e) {
      for (const auto& f : all) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
    }
  };
  RawStore empty;
  empty.doc_offsets = {0};
  expect_defect("empty.h5", empty, {"/tokens is empty"});
  RawStore floats = ok;
  floats.tokens_as_float = true;
  expect_defect("float.h5", floats, {"/tokens must be int32"});
  RawStore no_offsets = ok;
  no_offsets.with_doc_offsets = false;
  expect_defect("nooffsets.h5", no_offsets, {"/doc_offsets is missing"});
  RawStore short_offsets = ok;
  short_offsets.doc_offsets = {0, 2, 4};
  expect_defect("short.h5", short_offsets, {"/doc_offsets ends at 4, expected 5"});
  RawStore unordered = ok;
  unordered.doc_offsets = {0, 3, 3, 5};
  expect_defect("unordered.h5", unordered, {"/doc_offsets[2] = 3 must exceed"});
  RawStore too_many_offsets = ok;
  too_many_offsets.doc_offsets = {0, 1, 2, 3, 4, 5, 6};
  expect_defect("toomany.h5", too_many_offsets, {"/doc_offsets has 7 entries, more than /tokens (5) plus one"});
  RawStore no_hash = ok;
  no_hash.tokenizer_hash.reset();
  expect_defect("nohash.h5", no_hash, {"attribute \"tokenizer_hash\" is missing"});
  RawStore variable_hash = ok;
  variable_hash.hash_variable_length = true;
  expect_defect("vlen.h5", variable_hash, {"tokenizer_hash is a variable-length string"});
  RawStore version = ok;
  version.format_version = 2;
  expect_defect("version.h5", version, {"format_version 2, expected 1"});
}

}  // namespace
}  // namespace k2f::data
