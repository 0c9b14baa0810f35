// End-to-end tests of `k2forge tokenizer` and `k2forge data`: training twice gives identical
// files, encode/decode round-trip through the binary, build + inspect (text and chat stores), the
// embedded tokenizer reproduced from the embedded corpus, and each bad input (exit code, message,
// no output left).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "base/json_io.h"
#include "data/tokenizer.h"
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

// The loss mask's ones, counted independently: every token the assistant writes, from <think>
// (or the content after a dropped think pair) to <|im_end|>, by encoding the literal pieces.
TEST(DataCli, BuildChatStoreHasALossMaskOverTheAssistantTokens) {
  ScratchDir dir("cli-chat");
  write_file(dir / "chat.jsonl",
             R"({"messages": [{"role": "user", "content": "Hi"}, )"
             R"({"role": "assistant", "reasoning_content": "Greet back.", "content": "Hello there."}]})" "\n"
             R"({"tools": [{"type": "function", "function": {"name": "add"}}], "messages": [)"
             R"({"role": "user", "content": "Add 2 and 3"}, {"role": "assistant", "content": null, "tool_calls": )"
             R"([{"id": "functions.add:0", "type": "function", )"
             R"("function": {"name": "add", "arguments": {"a": 2, "b": 3}}}]}, )"
             R"({"role": "tool", "tool_call_id": "functions.add:0", "content": "5"}, )"
             R"({"role": "assistant", "reasoning_content": "r", "content": "5"}]})" "\n");
  auto r = run_command(kBinary + " data build --kind chat --no-progress --json --input " + (dir / "chat.jsonl") +
                       " --tokenizer " + kTokenizer + " --out " + (dir / "chat.h5"), false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Json report = Json::parse(r.output);
  const auto tokenizer = data::Tokenizer::load(kTokenizer);
  const auto n = [&](const std::string& text) { return static_cast<int64_t>(tokenizer.encode(text).size()); };
  const int64_t first = 1 + n("Greet back.") + 1 + n("Hello there.") + 1;
  const int64_t call = 2 + 1 + 1 + n("functions.add:0") + 1 + n("{\"a\": 2, \"b\": 3}") + 1 + 1 + 1;
  const int64_t answer = 1 + n("r") + 1 + n("5") + 1;
  const auto mask = testing::read_raw_dataset<uint8_t>(dir / "chat.h5", "loss_mask", H5T_NATIVE_UINT8);
  EXPECT_EQ(std::count(mask.begin(), mask.end(), 1), first + call + answer);
  EXPECT_EQ(report["loss_tokens"], first + call + answer);
  EXPECT_EQ(report["kind"], "chat");
  r = run_command(kBinary + " data inspect --json --store " + (dir / "chat.h5"), false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Json summary = Json::parse(r.output);
  EXPECT_EQ(summary["num_documents"], 2);
  EXPECT_EQ(summary["has_loss_mask"], true);
  EXPECT_EQ(static_cast<int64_t>(mask.size()), summary["num_tokens"].get<int64_t>());
}

TEST(DataCli, EmbeddedChatExamplesBuild) {
  ScratchDir dir("cli-chat-assets");
  const auto r = run_command(kBinary + " data build --kind chat --no-progress --json --input " + kSource +
                                 "/assets/chat/example.jsonl --tokenizer " + kTokenizer + " --out " + (dir / "ex.h5"),
                             false);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const Json report = Json::parse(r.output);
  EXPECT_EQ(report["documents"], 4);
  EXPECT_GT(report["loss_tokens"].get<int64_t>(), 0);
}

TEST(DataCli, BadChatLineExitsNonZeroNamingFileLineAndField) {
  ScratchDir dir("cli-chat-bad");
  write_file(dir / "chat.jsonl",
             R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})"
             "\n\n"
             R"({"messages": [{"role": "user", "content": "q"}, {"role": "narrator", "content": "a"}]})"
             "\n");
  expect_failure("data build --kind chat --input " + (dir / "chat.jsonl") + " --tokenizer " + kTokenizer + " --out " +
                     (dir / "out.h5"),
                 1, {"chat.jsonl:3: messages[1].role: unknown role \"narrator\""});
  EXPECT_FALSE(fs::exists(dir / "out.h5"));
}

TEST(DataCli, BadInputsExitNonZeroWithMessagesAndLeaveNothing) {
  ScratchDir dir("cli-bad");
  write_file(dir / "bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": 3}\n");
  write_file(dir / "good.jsonl", "{\"text\": \"fine\"}\n");
  write_file(dir / "notes.h5", "plain text, not HDF5");
  const std::string build = "data build --tokenizer " + kTokenizer + " --out " + (dir / "out.h5") + " --input ";
  expect_failure(build + (dir / "bad.jsonl"), 1, {"bad.jsonl:2", "string field \"text\""});
  expect_failure(build + (dir / "good.jsonl") + " --kind xml", 1, {"--kind \"xml\"", "accepted: text, chat"});
  expect_failure(build + (dir / "good.jsonl") + " --kind chat", 1, {"good.jsonl:1: messages: missing"});
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
