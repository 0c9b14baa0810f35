// `k2forge data build|inspect`: tokenises .jsonl/.txt inputs (text, or chat conversations rendered
// with the K2 chat template and a loss mask) into an HDF5 token store, and
// checks a store (attributes, offsets, every token id against its vocabulary) with a summary.
#include <iostream>

#include "base/error.h"
#include "base/json_io.h"
#include "data/arithmetic_task.h"
#include "data/key_chain_task.h"
#include "data/store_builder.h"
#include "data/token_store.h"
#include "train/cli/command.h"

namespace k2f::cli {
namespace {

int build(const cxxopts::ParseResult& parsed) {
  data::StoreBuildOptions options;
  check(parsed.count("input") > 0, "missing --input (see k2forge data --help)");
  options.inputs = parsed["input"].as<std::vector<std::string>>();
  options.tokenizer_dir = required_option(parsed, "tokenizer", "data");
  options.out = required_option(parsed, "out", "data");
  options.kind = parsed["kind"].as<std::string>();
  options.progress = parsed.count("no-progress") == 0;
  const auto report = data::build_store(options);
  std::cout << report.to_json().dump(parsed.count("json") ? -1 : 2) << std::endl;
  return 0;
}

// Reads every token in blocks and checks it against the store's vocab_size.
int inspect(const cxxopts::ParseResult& parsed) {
  const std::string path = required_option(parsed, "store", "data");
  const data::TokenStore store(path);
  constexpr int64_t kBlock = 1 << 20;
  int64_t max_id = 0;
  for (int64_t start = 0; start < store.num_tokens(); start += kBlock) {
    const auto ids = store.read_tokens(start, std::min(kBlock, store.num_tokens() - start));
    for (size_t i = 0; i < ids.size(); ++i) {
      check(ids[i] >= 0 && ids[i] < store.vocab_size(), path, ": token id ", ids[i], " at position ", start + int64_t(i),
            " is outside the store's vocabulary [0, ", store.vocab_size(), ")");
      max_id = std::max<int64_t>(max_id, ids[i]);
    }
  }
  const Json summary = {{"path", path},
                        {"format_version", data::kTokenStoreFormatVersion},
                        {"num_tokens", store.num_tokens()},
                        {"num_documents", store.num_documents()},
                        {"vocab_size", store.vocab_size()},
                        {"max_token_id", max_id},
                        {"tokenizer_hash", store.tokenizer_hash()},
                        {"has_loss_mask", store.has_loss_mask()}};
  std::cout << summary.dump(parsed.count("json") ? -1 : 2) << std::endl;
  return 0;
}

// Synthetic SFT conversations of the embedded reasoning task (data/arithmetic_task.h).
int synth_think(const cxxopts::ParseResult& parsed) {
  data::ThinkSynthOptions options;
  options.out = required_option(parsed, "out", "data");
  options.count = parsed["count"].as<int64_t>();
  options.seed = parsed["seed"].as<uint64_t>();
  options.tool_fraction = parsed["tool-fraction"].as<double>();
  const int64_t with_tool = data::write_think_jsonl(options);
  const Json report = {{"out", options.out}, {"conversations", options.count}, {"with_tool_calls", with_tool},
                       {"seed", options.seed}};
  std::cout << report.dump(parsed.count("json") ? -1 : 2) << std::endl;
  return 0;
}

// Synthetic SFT conversations of the embedded horizon task (data/key_chain_task.h).
int synth_chain(const cxxopts::ParseResult& parsed) {
  data::KeyChainSynthOptions options;
  options.out = required_option(parsed, "out", "data");
  options.count = parsed["count"].as<int64_t>();
  options.seed = parsed["seed"].as<uint64_t>();
  options.min_length = parsed["min-length"].as<int64_t>();
  options.max_length = parsed["max-length"].as<int64_t>();
  const int64_t lookups = data::write_key_chain_jsonl(options);
  const Json report = {{"out", options.out}, {"conversations", options.count}, {"lookups", lookups},
                       {"min_length", options.min_length}, {"max_length", options.max_length}, {"seed", options.seed}};
  std::cout << report.dump(parsed.count("json") ? -1 : 2) << std::endl;
  return 0;
}

}  // namespace

int run_data(const Args& args) {
  cxxopts::Options options("k2forge data",
                           "Tokenised HDF5 token stores.\n"
                           "  build    --input FILE... --tokenizer DIR --out OUT.h5 [--kind text|chat]\n"
                           "           text: .jsonl: one {\"text\": ...} per line; .txt: one document per\n"
                           "           blank-line-separated paragraph.\n"
                           "           chat: .jsonl: one conversation {\"messages\": [...], \"tools\": [...]}\n"
                           "           per line (OpenAI style: role, content, reasoning_content, tool_calls,\n"
                           "           tool_call_id), rendered with the K2 chat template; /loss_mask is 1 on\n"
                           "           what the assistant writes.\n"
                           "           The tokenizer's EOS id follows every document (loss mask 0 in chat stores).\n"
                           "  inspect  --store OUT.h5   check a store and print its summary\n"
                           "  synth-think --out OUT.jsonl [--count N] [--seed S] [--tool-fraction F]\n"
                           "           verifiable arithmetic problems as K2 chat conversations with reasoning,\n"
                           "           a share F of them calling the calculator tool (train split only;\n"
                           "           build a store from it with --kind chat)\n"
                           "  synth-chain --out OUT.jsonl [--count N] [--seed S] [--min-length A] [--max-length B]\n"
                           "           the horizon task: chains of A..B keys followed through the lookup tool,\n"
                           "           one call per key, as K2 chat conversations (train split only)");
  options.add_options()("action", "build or inspect", cxxopts::value<std::string>())(
      "input", "build: input .jsonl/.txt file(s)", cxxopts::value<std::vector<std::string>>())(
      "tokenizer", "build: tokenizer directory", cxxopts::value<std::string>())(
      "out", "build: output store (must not exist)", cxxopts::value<std::string>())(
      "kind", "build: text or chat", cxxopts::value<std::string>()->default_value("text"))(
      "no-progress", "build: no progress bar")("store", "inspect: the store", cxxopts::value<std::string>())(
      "json", "print compact JSON")("count", "synth-think: conversations", cxxopts::value<int64_t>()->default_value("1000"))(
      "seed", "synth-think: problem seed", cxxopts::value<uint64_t>()->default_value("0"))(
      "tool-fraction", "synth-think: share calling the calculator", cxxopts::value<double>()->default_value("0.5"))(
      "min-length", "synth-chain: shortest chain", cxxopts::value<int64_t>()->default_value("1"))(
      "max-length", "synth-chain: longest chain", cxxopts::value<int64_t>()->default_value("8"));
  options.parse_positional({"action", "input"});
  options.positional_help("build|inspect|synth-think|synth-chain");
  bool help = false;
  const auto parsed = parse_args(options, args, help);
  if (help) return 0;
  const std::string action = required_option(parsed, "action", "data");
  if (action == "build") return build(parsed);
  if (action == "inspect") return inspect(parsed);
  if (action == "synth-think") return synth_think(parsed);
  if (action == "synth-chain") return synth_chain(parsed);
  throw cxxopts::exceptions::parsing("unknown action \"" + action +
                                     "\" (expected build, inspect, synth-think or synth-chain)");
}

}  // namespace k2f::cli
