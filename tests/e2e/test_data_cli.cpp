// End-to-end tests of `k2forge tokenizer` and `k2forge data`: training twice gives identical
// files, encode/decode round-trip through the binary, build + inspect, the embedded tokenizer
// reproduced from the embedded corpus, and each bad input (exit code, message, no output left).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/json_io.h"
#include "data/raw_hdf5.h"
#include "e2e/e2e_paths.h"
#include "test_util.h"

namespace k2f {
namespace {

namespace fs = std::filesystem;
using testing::run_command;
using testing::ScratchDir;

using testing::kBinary;
using testing::kSource;
const std::string kTokenizer = kSource + "/assets/tokenizer";

void write_file(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

void expect_failure(const std::string& args, int code, std::initializer_list<std::string> fragments) {
  const auto r = run_command(kBinary + " " + args);
  EXPECT_EQ(r.exit_code, code) << args << "\n" << r.output;
  for (const auto& f : fragments) EXPECT_NE(r.output.find(f), std::string::npos) << args << "\n" << r.output;
}

TEST(DataCli, TokenizerTrainTwiceGivesIdenticalFiles) {
  ScratchDir dir("cli-train");
  write_file(dir / "a.txt", "Some text to learn from.\n\nAnother paragraph, with 123 digits.\n");
  write_file(dir / "b.jsonl", "{\"text\": \"JSON documents count too: caf\\u00e9 \\u65e5\\u672c\"}\n");
  for (const char* out : {"t1", "t2"}) {
    const auto r = run_command(kBinary + " tokenizer train --input " + (dir / "a.txt") + " " + (dir / "b.jsonl") +
                               " --vocab-size 600 --out " + (dir / out));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  for (const char* file : {"tiktoken.model", "tokenizer_config.json", "pattern.txt"})
    EXPECT_EQ(read_text_file(dir / "t1/" + file), read_text_file(dir / "t2/" + file)) << file;
  expect_failure("tokenizer train --input " + (dir / "a.txt") + " --vocab-size 600 --out " + (dir / "t1"), 1,
                 {"t1", "already exists"});
}

TEST(DataCli, EmbeddedTokenizerIsReproducedFromTheEmbeddedCorpus) {
  ScratchDir dir("cli-assets");
  const auto r = run_command(kBinary + " tokenizer train --input " + kSource +
                             "/assets/corpus/python_docs_train.jsonl --vocab-size 4352 --out " + (dir / "t"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* file : {"tiktoken.model", "tokenizer_config.json", "pattern.txt"})
    EXPECT_EQ(read_text_file(dir / "t/" + file), read_text_file(kTokenizer + "/" + file)) << file;
}

TEST(DataCli, EncodeDecodeRoundTrip) {
  ScratchDir dir("cli-encode");
  const std::string text = "Hello, wörld! 你好 <|im_end|> [EOS]\n\t 42";
  write_file(dir / "in.txt", text);
  auto r = run_command(kBinary + " tokenizer encode --tokenizer " + kTokenizer + " --input " + (dir / "in.txt") +
                           " --json > " + (dir / "ids.json"), false);
  ASSERT_EQ(r.exit_code, 0);
  const Json ids = read_json_file(dir / "ids.json");
  for (const auto& id : ids) EXPECT_LT(id.get<int>(), 4096);
  r = run_command(kBinary + " tokenizer encode --allow-special --tokenizer " + kTokenizer + " --input " +
                      (dir / "in.txt") + " --json", false);
  const Json special = Json::parse(r.output);
  EXPECT_NE(std::find(special.begin(), special.end(), Json(4098)), special.end()) << r.output;  // <|im_end|>
  EXPECT_NE(std::find(special.begin(), special.end(), Json(4097)), special.end()) << r.output;  // [EOS]
  r = run_command(kBinary + " tokenizer decode --tokenizer " + kTokenizer + " --input " + (dir / "ids.json"), false);
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, text);
  write_file(dir / "bad_ids.json", "[1, 2, 99999]");
  expect_failure("tokenizer decode --tokenizer " + kTokenizer + " --input " + (dir / "bad_ids.json"), 1,
                 {"token id 99999 at position 2"});
}

TEST(DataCli, BuildThenInspect) {
  ScratchDir dir("cli-build");
  write_file(dir / "in.jsonl", "{\"text\": \"First document.\"}\n{\"text\": \"Second one.\"}\n");
  auto r = run_command(kBinary + " data build --input " + (dir / "in.jsonl") + " --tokenizer " + kTokenizer +
                       " --out " + (dir / "out.h5") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("data build ["), std::string::npos) << "progress bar missing:\n" << r.output;
  r = run_command(kBinary + " data inspect --store " + (dir / "out.h5") + " --json", false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Json summary = Json::parse(r.output);
  EXPECT_EQ(summary["num_documents"], 2);
  EXPECT_EQ(summary["vocab_size"], 4352);
  EXPECT_EQ(summary["max_token_id"], 4097);  // the EOS after each document
}

TEST(DataCli, BadInputsExitNonZeroWithMessagesAndLeaveNothing) {
  ScratchDir dir("cli-bad");
  write_file(dir / "bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": 3}\n");
  write_file(dir / "good.jsonl", "{\"text\": \"fine\"}\n");
  write_file(dir / "notes.h5", "plain text, not HDF5");
  const std::string build = "data build --tokenizer " + kTokenizer + " --out " + (dir / "out.h5") + " --input ";
  expect_failure(build + (dir / "bad.jsonl"), 1, {"bad.jsonl:2", "string field \"text\""});
  expect_failure(build + (dir / "good.jsonl") + " --kind chat", 1, {"--kind \"chat\"", "accepted: text"});
  expect_failure("data build --input " + (dir / "good.jsonl") + " --out " + (dir / "out.h5"), 1, {"--tokenizer"});
  expect_failure("data inspect --store " + (dir / "notes.h5"), 1, {"notes.h5", "not an HDF5 file"});
  expect_failure("data frobnicate", 2, {"unknown action \"frobnicate\""});
  expect_failure("tokenizer encode --tokenizer " + (dir / "nowhere") + " --input " + (dir / "good.jsonl"), 1,
                 {"nowhere", "not a tokenizer directory"});
  expect_failure("bench nothing", 1, {"unknown benchmark \"nothing\"", "tokenizer", "data"});
  EXPECT_FALSE(fs::exists(dir / "out.h5"));
  for (const auto& entry : fs::directory_iterator(dir.str()))
    EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << entry.path();
}

TEST(DataCli, InspectNamesTheStoreAndThePlaceOfEachDefect) {
  ScratchDir dir("cli-stores");
  testing::RawStore bad_ids;
  bad_ids.tokens = {1, 2, 3, 150, 4};
  bad_ids.doc_offsets = {0, 5};
  testing::write_raw_store(dir / "bad_ids.h5", bad_ids);
  expect_failure("data inspect --store " + (dir / "bad_ids.h5"), 1,
                 {"bad_ids.h5", "token id 150 at position 3", "[0, 100)"});
  testing::RawStore empty;
  empty.doc_offsets = {0};
  testing::write_raw_store(dir / "empty.h5", empty);
  expect_failure("data inspect --store " + (dir / "empty.h5"), 1, {"empty.h5", "/tokens is empty"});
  write_file(dir / "in.jsonl", "{\"text\": \"" + std::string(20000, 'x') + " end\"}\n");
  ASSERT_EQ(run_command(kBinary + " data build --no-progress --input " + (dir / "in.jsonl") + " --tokenizer " +
                        kTokenizer + " --out " + (dir / "good.h5")).exit_code, 0);
  fs::copy_file(dir / "good.h5", dir / "truncated.h5");
  fs::resize_file(dir / "truncated.h5", fs::file_size(dir / "good.h5") / 2);
  expect_failure("data inspect --store " + (dir / "truncated.h5"), 1, {"truncated.h5"});
}

}  // namespace
}  // namespace k2f
