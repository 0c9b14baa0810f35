// Tests of data/store_builder.cpp and data/document_reader.cpp: a built store read back with
// the raw HDF5 API equals the tokenizer's output for each document plus EOS (JSONL and
// paragraph-split text), a chat store holds each rendered conversation plus EOS with its loss
// mask (EOS masked out), and each bad input fails naming the file and line, leaving no output.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/chat_template.h"
#include "data/document_reader.h"
#include "data/raw_hdf5.h"
#include "data/store_builder.h"
#include "data/token_store.h"
#include "data/tokenizer.h"
#include "test_util.h"

namespace k2f::data {
namespace {

namespace fs = std::filesystem;
using testing::expect_error;
using testing::ScratchDir;

const std::string kTokenizer = std::string(K2F_SOURCE_DIR) + "/assets/tokenizer";

void write_file(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

StoreBuildOptions options_for(std::vector<std::string> inputs, const std::string& out) {
  StoreBuildOptions options;
  options.inputs = std::move(inputs);
  options.tokenizer_dir = kTokenizer;
  options.out = out;
  options.progress = false;
  options.flush_tokens = 7;  // many appends even for small inputs
  return options;
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(DocumentReader, JsonlAndParagraphs) {
  ScratchDir dir("docs");
  write_file(dir / "a.jsonl", "{\"text\": \"one\"}\n\n  \n{\"text\": \"two\\nlines\", \"id\": 3}\n");
  write_file(dir / "b.txt", "\n\nfirst para\nsecond line\n\n \t\nsecond para\n\n\nthird\n");
  std::vector<std::string> docs;
  std::string text;
  for (const auto& path : {dir / "a.jsonl", dir / "b.txt"}) {
    DocumentReader reader(path);
    while (reader.next(text)) docs.push_back(text);
  }
  EXPECT_EQ(docs, (std::vector<std::string>{"one", "two\nlines", "first para\nsecond line", "second para", "third"}));
}

TEST(StoreBuilder, ReadBackEqualsTokenizerOutputPlusEos) {
  ScratchDir dir("build");
  const std::vector<std::string> documents = {"Hello world.", "Ünïcödé 日本語 and digits 12345",
                                              "   leading spaces\tand tabs", "a"};
  std::string jsonl;
  for (const auto& d : documents) jsonl += Json({{"text", d}}).dump() + "\n";
  write_file(dir / "in.jsonl", jsonl);
  write_file(dir / "in.txt", "para one\nline two\n\npara two\n");
  const auto report = build_store(options_for({dir / "in.jsonl", dir / "in.txt"}, dir / "out.h5"));

  const auto tokenizer = Tokenizer::load(kTokenizer);
  std::vector<int32_t> expected;
  std::vector<int64_t> offsets{0};
  for (const auto& d : {documents[0], documents[1], documents[2], documents[3], std::string("para one\nline two"),
                        std::string("para two")}) {
    const auto ids = tokenizer.encode(d);
    expected.insert(expected.end(), ids.begin(), ids.end());
    expected.push_back(tokenizer.eos_id());
    offsets.push_back(static_cast<int64_t>(expected.size()));
  }
  EXPECT_EQ(testing::read_raw_dataset<int32_t>(dir / "out.h5", "tokens", H5T_NATIVE_INT32), expected);
  EXPECT_EQ(testing::read_raw_dataset<int64_t>(dir / "out.h5", "doc_offsets", H5T_NATIVE_INT64), offsets);
  EXPECT_EQ(testing::read_raw_int_attribute(dir / "out.h5", "vocab_size"), tokenizer.vocab_size());
  const TokenStore store(dir / "out.h5");
  EXPECT_EQ(store.tokenizer_hash(), tokenizer.hash());
  EXPECT_EQ(report.documents, 6);
  EXPECT_EQ(report.tokens, static_cast<int64_t>(expected.size()));
  EXPECT_EQ(files_in(dir.str()), (std::vector<std::string>{"in.jsonl", "in.txt", "out.h5"}));
}

TEST(StoreBuilder, BadInputsNameFileAndLineAndLeaveNoOutput) {
  ScratchDir dir("build-bad");
  write_file(dir / "malformed.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"ok\"}\n{\"text\": oops}\n");
  write_file(dir / "utf8.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"bad \xff byte\"}\n");
  write_file(dir / "field.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"no text\"}\n");
  write_file(dir / "surrogate.jsonl", "{\"text\": \"\\ud800\"}\n");
  write_file(dir / "empty.jsonl", "\n\n");
  write_file(dir / "good.jsonl", "{\"text\": \"fine\"}\n");
  write_file(dir / "data.csv", "a,b\n");
  const std::string out = dir / "out.h5";
  expect_error([&] { build_store(options_for({dir / "malformed.jsonl"}, out)); },
               {"malformed.jsonl:3", "invalid JSON"});
  expect_error([&] { build_store(options_for({dir / "utf8.jsonl"}, out)); },
               {"utf8.jsonl:2, byte 15", "invalid UTF-8"});
  expect_error([&] { build_store(options_for({dir / "field.jsonl"}, out)); },
               {"field.jsonl:2", "string field \"text\""});
  expect_error([&] { build_store(options_for({dir / "surrogate.jsonl"}, out)); }, {"surrogate.jsonl:1"});
  expect_error([&] { build_store(options_for({dir / "empty.jsonl"}, out)); }, {"no documents in", "empty.jsonl"});
  expect_error([&] { build_store(options_for({dir / "data.csv"}, out)); }, {"data.csv", "unsupported input"});
  expect_error([&] { build_store(options_for({dir / "absent.jsonl"}, out)); }, {"absent.jsonl", "not found"});
  auto xml = options_for({dir / "good.jsonl"}, out);
  xml.kind = "xml";
  expect_error([&] { build_store(xml); }, {"--kind \"xml\"", "accepted: text, chat"});
  auto no_tokenizer = options_for({dir / "good.jsonl"}, out);
  no_tokenizer.tokenizer_dir = dir / "missing-tokenizer";
  expect_error([&] { build_store(no_tokenizer); }, {"missing-tokenizer"});
  EXPECT_FALSE(fs::exists(out));
  for (const auto& name : files_in(dir.str())) EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
  build_store(options_for({dir / "good.jsonl"}, out));
  expect_error([&] { build_store(options_for({dir / "good.jsonl"}, out)); }, {"out.h5", "already exists"});
}

// `--out runs/data/x.h5` on a fresh checkout: the missing directories are made; a build that fails
// removes the ones it made, so nothing is left behind, and never touches a directory that existed.
TEST(StoreBuilder, MissingOutputDirectoriesAreCreatedAndRemovedAgainOnFailure) {
  ScratchDir dir("build-parents");
  write_file(dir / "good.jsonl", "{\"text\": \"fine\"}\n");
  write_file(dir / "empty.jsonl", "\n");
  expect_error([&] { build_store(options_for({dir / "empty.jsonl"}, dir / "made/deeper/out.h5")); }, {"no documents in"});
  EXPECT_FALSE(fs::exists(dir / "made"));
  EXPECT_EQ(files_in(dir.str()), (std::vector<std::string>{"empty.jsonl", "good.jsonl"}));
  const auto report = build_store(options_for({dir / "good.jsonl"}, dir / "made/deeper/out.h5"));
  EXPECT_GT(report.tokens, 0);
  EXPECT_TRUE(fs::is_regular_file(dir / "made/deeper/out.h5"));
  expect_error([&] { build_store(options_for({dir / "empty.jsonl"}, dir / "made/other/out.h5")); }, {"no documents in"});
  EXPECT_FALSE(fs::exists(dir / "made/other"));
  EXPECT_TRUE(fs::is_regular_file(dir / "made/deeper/out.h5"));
}

StoreBuildOptions chat_options_for(std::vector<std::string> inputs, const std::string& out) {
  auto options = options_for(std::move(inputs), out);
  options.kind = "chat";
  return options;
}

const char* kToolConversation =
    R"({"tools": [{"type": "function", "function": {"name": "add", "parameters": {}}}], "messages": [)"
    R"({"role": "user", "content": "2+3?"}, {"role": "assistant", "reasoning_content": "Use the tool.", )"
    R"("tool_calls": [{"id": "c", "function": {"name": "add", "arguments": {"a": 2, "b": 3}}}]}, )"
    R"({"role": "tool", "tool_call_id": "c", "content": "5"}, {"role": "assistant", "content": "5"}]})";

TEST(StoreBuilder, ChatStoreHoldsEachRenderedConversationPlusAMaskedEos) {
  ScratchDir dir("build-chat");
  const std::vector<std::string> records = {
      kToolConversation,
      R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, )"
      R"({"role": "assistant", "content": "Hello."}]})"};
  write_file(dir / "in.jsonl", records[0] + "\n\n" + records[1] + "\n");
  const auto report = build_store(chat_options_for({dir / "in.jsonl"}, dir / "out.h5"));

  const auto tokenizer = Tokenizer::load(kTokenizer);
  const ChatTemplate chat(tokenizer);
  std::vector<int32_t> tokens;
  std::vector<uint8_t> mask;
  std::vector<int64_t> offsets{0};
  for (const auto& record : records) {
    const auto rendered = chat.render(parse_chat_record(nlohmann::ordered_json::parse(record)));
    tokens.insert(tokens.end(), rendered.tokens.begin(), rendered.tokens.end());
    mask.insert(mask.end(), rendered.loss_mask.begin(), rendered.loss_mask.end());
    tokens.push_back(tokenizer.eos_id());
    mask.push_back(0);
    offsets.push_back(static_cast<int64_t>(tokens.size()));
  }
  EXPECT_EQ(testing::read_raw_dataset<int32_t>(dir / "out.h5", "tokens", H5T_NATIVE_INT32), tokens);
  EXPECT_EQ(testing::read_raw_dataset<int64_t>(dir / "out.h5", "doc_offsets", H5T_NATIVE_INT64), offsets);
  EXPECT_EQ(testing::read_raw_dataset<uint8_t>(dir / "out.h5", "loss_mask", H5T_NATIVE_UINT8), mask);
  EXPECT_EQ(report.documents, 2);
  EXPECT_EQ(report.loss_tokens, std::count(mask.begin(), mask.end(), 1));
  EXPECT_GT(report.loss_tokens, 0);
  EXPECT_EQ(report.to_json()["loss_tokens"], report.loss_tokens);
  EXPECT_TRUE(TokenStore(dir / "out.h5").has_loss_mask());
}

TEST(StoreBuilder, BadChatInputsNameFileLineAndFieldAndLeaveNoOutput) {
  ScratchDir dir("build-chat-bad");
  write_file(dir / "tool.jsonl", std::string(kToolConversation) + "\n" +
                                     R"({"messages": [{"role": "tool", "content": "5"}]})" + "\n");
  write_file(dir / "args.jsonl", R"({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", )"
                                 R"("tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}]})" "\n");
  write_file(dir / "silent.jsonl", R"({"messages": [{"role": "user", "content": "q"}]})" "\n");
  write_file(dir / "shape.jsonl", R"({"text": "not a conversation"})" "\n");
  write_file(dir / "notes.txt", "a paragraph\n");
  const std::string out = dir / "out.h5";
  expect_error([&] { build_store(chat_options_for({dir / "tool.jsonl"}, out)); },
               {"tool.jsonl:2: messages[0].tool_call_id: missing"});
  expect_error([&] { build_store(chat_options_for({dir / "args.jsonl"}, out)); },
               {"args.jsonl:1: messages[1].tool_calls[0].function.arguments: not valid JSON", "{oops"});
  expect_error([&] { build_store(chat_options_for({dir / "silent.jsonl"}, out)); },
               {"silent.jsonl:1", "no assistant message"});
  expect_error([&] { build_store(chat_options_for({dir / "shape.jsonl"}, out)); },
               {"shape.jsonl:1: messages: missing"});
  expect_error([&] { build_store(chat_options_for({dir / "notes.txt"}, out)); },
               {"notes.txt", "--kind chat reads .jsonl"});
  EXPECT_FALSE(fs::exists(out));
  for (const auto& name : files_in(dir.str())) EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
}

}  // namespace
}  // namespace k2f::data
