// `k2forge tokenizer train|encode|decode`: the BPE trainer and the tiktoken-format tokenizer of
// data/ on the command line. encode/decode read a file ("-": stdin) and write to stdout, so they
// compose with other tools; ids are a JSON array with --json, else space-separated.
#include <iostream>
#include <iterator>
#include <sstream>

#include "base/error.h"
#include "base/json_io.h"
#include "base/log.h"
#include "data/bpe_trainer.h"
#include "data/document_reader.h"
#include "data/tokenizer.h"
#include "train/cli/command.h"

namespace k2f::cli {
namespace {

// The single --input of encode/decode.
std::string single_input(const cxxopts::ParseResult& parsed) {
  check(parsed.count("input") > 0, "missing --input (see k2forge tokenizer --help)");
  const auto inputs = parsed["input"].as<std::vector<std::string>>();
  check(inputs.size() == 1, "encode and decode take one --input, got ", inputs.size());
  return inputs[0];
}

std::string read_input(const std::string& path) {
  if (path != "-") return read_text_file(path);
  return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
}

int train_tokenizer(const cxxopts::ParseResult& parsed) {
  check(parsed.count("input") > 0, "missing --input (see k2forge tokenizer --help)");
  data::BpeTrainerOptions options;
  options.vocab_size = parsed["vocab-size"].as<int64_t>();
  const std::string out = required_option(parsed, "out", "tokenizer");
  data::BpeTrainer trainer(options);
  int64_t documents = 0;
  for (const auto& input : parsed["input"].as<std::vector<std::string>>()) {
    data::DocumentReader reader(input);
    std::string text;
    while (reader.next(text)) {
      trainer.add_text(text);
      ++documents;
    }
  }
  const data::Tokenizer tokenizer = trainer.train();
  tokenizer.save(out);
  std::cerr << "k2forge tokenizer train: " << documents << " documents, " << trainer.num_pieces() << " distinct pieces -> "
            << tokenizer.num_ranks() << " ranks + " << tokenizer.special_tokens().size() << " special tokens (vocab "
            << tokenizer.vocab_size() << ", EOS " << tokenizer.eos_id() << ") in " << out << "\n"
            << "  " << tokenizer.hash() << "\n";
  return 0;
}

int encode(const cxxopts::ParseResult& parsed) {
  const auto tokenizer = data::Tokenizer::load(required_option(parsed, "tokenizer", "tokenizer"));
  const std::string text = read_input(single_input(parsed));
  const auto ids = parsed.count("allow-special") ? tokenizer.encode(text, tokenizer.all_special_ids())
                                                 : tokenizer.encode(text);
  if (parsed.count("json")) {
    std::cout << Json(ids).dump() << std::endl;
  } else {
    for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
    std::cout << std::endl;
  }
  return 0;
}

std::vector<int32_t> parse_ids(const std::string& text, const std::string& path) {
  const size_t first = text.find_first_not_of(" \t\r\n");
  std::vector<int32_t> ids;
  if (first != std::string::npos && text[first] == '[') {
    Json json;
    try {
      json = Json::parse(text);
    } catch (const Json::exception& e) {
      fail(path, ": invalid JSON: ", e.what());
    }
    for (size_t i = 0; i < json.size(); ++i) {
      check(json[i].is_number_integer(), path, ": entry ", i, ": expected an integer token id, got ", json[i].dump());
      ids.push_back(json[i].get<int32_t>());
    }
    return ids;
  }
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    char* end = nullptr;
    const long value = std::strtol(word.c_str(), &end, 10);
    check(*end == '\0', path, ": entry ", ids.size(), ": expected an integer token id, got \"", word, "\"");
    ids.push_back(static_cast<int32_t>(value));
  }
  return ids;
}

int decode(const cxxopts::ParseResult& parsed) {
  const auto tokenizer = data::Tokenizer::load(required_option(parsed, "tokenizer", "tokenizer"));
  const std::string path = single_input(parsed);
  const std::string bytes = tokenizer.decode(parse_ids(read_input(path), path));
  std::cout.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  std::cout.flush();
  return 0;
}

}  // namespace

int run_tokenizer(const Args& args) {
  cxxopts::Options options("k2forge tokenizer",
                           "tiktoken-format BPE tokenizer.\n"
                           "  train   --input FILE... --vocab-size N --out DIR   byte-level BPE from .jsonl/.txt documents;\n"
                           "          N counts all ids: N-256 ranks, then K2's 256 special tokens\n"
                           "  encode  --tokenizer DIR --input FILE [--json] [--allow-special]   ids of FILE's bytes\n"
                           "  decode  --tokenizer DIR --input FILE   bytes of the ids in FILE (JSON array or whitespace)\n"
                           "FILE \"-\" reads stdin.");
  options.add_options()("action", "train, encode or decode", cxxopts::value<std::string>())(
      "input", "input file(s)", cxxopts::value<std::vector<std::string>>())(
      "vocab-size", "train: total vocabulary (ranks + 256 special tokens)",
      cxxopts::value<int64_t>()->default_value("4352"))("out", "train: output tokenizer directory (must not exist)",
                                                         cxxopts::value<std::string>())(
      "tokenizer", "encode/decode: tokenizer directory", cxxopts::value<std::string>())(
      "json", "encode: print a JSON array")("allow-special", "encode: recognise special-token text as special ids");
  options.parse_positional({"action", "input"});
  options.positional_help("train|encode|decode");
  bool help = false;
  const auto parsed = parse_args(options, args, help);
  if (help) return 0;
  const std::string action = required_option(parsed, "action", "tokenizer");
  if (action == "train") return train_tokenizer(parsed);
  if (action == "encode") return encode(parsed);
  if (action == "decode") return decode(parsed);
  throw cxxopts::exceptions::parsing("unknown action \"" + action + "\" (expected train, encode or decode)");
}

}  // namespace k2f::cli
