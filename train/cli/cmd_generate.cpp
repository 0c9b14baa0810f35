// `k2forge generate`: sampling with the MLA latent KV cache from an HF directory or a training
// checkpoint. One prompt streams its text to stdout token by token; a batch of token-id prompts
// prints each row when all are done. --out writes the ids and both log-probs of every sampled
// token (the model's and the sampling distribution's) as JSON, for RL and for checking.
// Prompts are built by build_prompts() alone: --prompt text, --tokens-json ids, or --chat
// conversations rendered with the K2 template. With --run-tools the model's tool calls are run
// (the calculator, under the RL tool limits) and their results shown to it before it goes on,
// exactly as in RL rollouts (train/rl/rollout.h); each row is printed when it is done.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>

#include "base/error.h"
#include "base/json_io.h"
#include "data/chat_template.h"
#include "data/document_reader.h"
#include "data/tokenizer.h"
#include "model/kv_cache.h"
#include "model/sampler.h"
#include "train/cli/command.h"
#include "train/model_loading.h"
#include "train/rl/rollout.h"
#include "train/rl/tools.h"

namespace k2f::cli {
namespace {

// A JSON file holding one prompt ([ids]) or several ([[ids], ...]).
std::vector<std::vector<int64_t>> read_prompt_ids(const std::string& path) {
  const Json json = read_json_file(path);
  check(json.is_array() && !json.empty(), path, ": expected a JSON array of token ids or of token-id arrays");
  const bool one_prompt = !json[0].is_array();
  std::vector<std::vector<int64_t>> prompts;
  for (size_t i = 0; i < (one_prompt ? 1 : json.size()); ++i) {
    const Json& row = one_prompt ? json : json[i];
    check(row.is_array(), path, ": row ", i, " must be an array of token ids, got ", row.dump());
    std::vector<int64_t> ids;
    for (size_t t = 0; t < row.size(); ++t) {
      check(row[t].is_number_integer(), path, ": row ", i, ", position ", t, ": expected an integer token id, got ",
            row[t].dump());
      ids.push_back(row[t].get<int64_t>());
    }
    prompts.push_back(std::move(ids));
  }
  return prompts;
}

// One conversation per line ({"messages": [...], "tools": [...]}, as for `data build --kind chat`),
// each rendered as the generation prompt of the assistant's next turn.
std::vector<std::vector<int64_t>> read_chat_prompts(const std::string& path, const data::ChatTemplate& chat) {
  check(path.size() > 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0, path,
        ": --chat expects a .jsonl file (one {\"messages\": [...]} object per line)");
  data::DocumentReader reader(path);  // line numbers, UTF-8 and JSON errors, blank lines skipped
  std::vector<std::vector<int64_t>> prompts;
  nlohmann::ordered_json record;
  while (reader.next_json(record)) {
    const std::string where = path + ":" + std::to_string(reader.line_number());
    try {
      const auto ids = chat.render_generation_prompt(data::parse_chat_record(record));
      prompts.emplace_back(ids.begin(), ids.end());
    } catch (const Error& e) {
      fail(where, ": ", e.what());
    }
  }
  check(!prompts.empty(), path, ": no conversations");
  return prompts;
}

// The prompts to continue: plain text encoded as ordinary text (no BOS, as text documents are
// tokenised for training), token ids from a file, or chat conversations. Ids outside the model's
// vocabulary are refused by model::generate with the row and the id.
std::vector<std::vector<int64_t>> build_prompts(const cxxopts::ParseResult& parsed, const data::Tokenizer& tokenizer) {
  check(parsed.count("prompt") + parsed.count("tokens-json") + parsed.count("chat") == 1,
        "give exactly one of --prompt TEXT, --tokens-json FILE or --chat FILE");
  if (parsed.count("tokens-json")) return read_prompt_ids(parsed["tokens-json"].as<std::string>());
  if (parsed.count("chat")) return read_chat_prompts(parsed["chat"].as<std::string>(), data::ChatTemplate(tokenizer));
  const auto ids = tokenizer.encode(parsed["prompt"].as<std::string>());
  check(!ids.empty(), "--prompt is empty");
  return {std::vector<int64_t>(ids.begin(), ids.end())};
}

// The text of one token; ids the tokenizer lacks (a model vocabulary larger than the
// tokenizer's) are shown by number.
std::string token_text(const data::Tokenizer& tokenizer, int64_t id) {
  if (id < 0 || id >= tokenizer.vocab_size()) return "<|id " + std::to_string(id) + "|>";
  return tokenizer.decode({static_cast<int32_t>(id)});
}

std::string tokenizer_dir(const cxxopts::ParseResult& parsed, const std::string& model_dir) {
  if (parsed.count("tokenizer")) return parsed["tokenizer"].as<std::string>();
  check(std::filesystem::exists(std::filesystem::path(model_dir) / "tiktoken.model"),
        "missing --tokenizer (", model_dir, " holds no tiktoken.model; see k2forge generate --help)");
  return model_dir;
}

// Model and tokenizer eos, the tokenizer's end-of-turn token, and any --stop-id.
std::vector<int64_t> stop_ids(const cxxopts::ParseResult& parsed, const data::Tokenizer& tokenizer,
                              const model::ModelConfig& config) {
  std::vector<int64_t> ids = {config.eos_token_id, tokenizer.eos_id()};
  if (tokenizer.special_id("<|im_end|>") >= 0) ids.push_back(tokenizer.special_id("<|im_end|>"));
  if (parsed.count("stop-id")) {
    for (const int64_t id : parsed["stop-id"].as<std::vector<int64_t>>()) ids.push_back(id);
  }
  return ids;
}

// A request past the model's positions is refused before the KV cache is allocated (which would
// otherwise die in the allocator asking for gigabytes).
void check_fits_positions(const std::vector<std::vector<int64_t>>& prompts, int64_t max_new_tokens,
                          const model::ModelConfig& config, const std::string& model_dir) {
  size_t longest = 0;
  for (const auto& prompt : prompts) longest = std::max(longest, prompt.size());
  const int64_t room = config.max_position_embeddings - static_cast<int64_t>(longest);
  check(max_new_tokens <= room, "--max-new-tokens (", max_new_tokens, ") plus the longest prompt (", longest,
        " tokens) exceed the model's max_position_embeddings (", config.max_position_embeddings, ", ", model_dir,
        "/config.json): at most ", std::max<int64_t>(0, room), " new tokens fit");
}

// --run-tools: every row is an episode of the RL rollout engine, so tool calls are parsed, run and
// answered exactly as during RL. Rows print when all are done; --out adds the tool messages.
int generate_with_tools(model::KimiForCausalLM& lm, const data::Tokenizer& tokenizer,
                        const std::vector<std::vector<int64_t>>& prompts, const model::GenerationOptions& generation,
                        int64_t max_tool_calls, const cxxopts::ParseResult& parsed) {
  const data::ChatTemplate chat(tokenizer);
  train::rl::ToolRunner tools;
  tools.add(std::make_shared<train::rl::CalculatorTool>());
  const train::rl::RolloutEngine engine(tokenizer, chat, tools);
  train::rl::RolloutOptions rollout;
  rollout.sampling = generation.sampling;
  rollout.max_response_tokens = generation.max_new_tokens;
  rollout.max_tool_calls = max_tool_calls;
  rollout.seed = generation.seed;
  const auto start = std::chrono::steady_clock::now();
  const auto episodes = engine.run_model(lm, prompts, rollout);  // continuous batching
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Json rows = Json::array();
  int64_t sampled = 0;
  for (size_t r = 0; r < episodes.size(); ++r) {
    const auto& e = episodes[r];
    const std::vector<int32_t> response(e.tokens.begin() + e.prompt_length, e.tokens.end());
    const std::string text = tokenizer.decode(response);
    sampled += e.response_tokens;
    std::cout << "=== row " << r << " (" << e.num_tool_calls << " tool calls, "
              << (e.truncated ? "truncated" : "answered") << ") ===\n" << text << "\n";
    rows.push_back({{"prompt", prompts[r]},
                    {"tokens", std::vector<int64_t>(e.tokens.begin() + e.prompt_length, e.tokens.end())},
                    {"text", text},
                    {"final_content", e.final_content},
                    {"tool_calls", e.num_tool_calls},
                    {"tool_messages", e.tool_messages},
                    {"tool_events", e.tool_stats.events},
                    {"truncated", e.truncated}});
  }
  std::cerr << "k2forge generate: " << episodes.size() << " rows, " << sampled << " sampled tokens in " << seconds
            << " s, tools run: " << max_tool_calls << " calls per row at most\n";
  if (parsed.count("out")) {
    const Json report = {{"seed", generation.seed}, {"temperature", generation.sampling.temperature}, {"rows", rows}};
    write_text_file_atomic(parsed["out"].as<std::string>(),
                           report.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n");
  }
  return 0;
}

}  // namespace

int run_generate(const Args& args) {
  cxxopts::Options options("k2forge generate", "Sample continuations with the MLA latent KV cache");
  options.add_options()("model", "HF model directory (bf16, FP8-block or INT4: W4A16) or training checkpoint", cxxopts::value<std::string>())(
      "prompt", "prompt text (encoded with --tokenizer)", cxxopts::value<std::string>())(
      "tokens-json", "or: JSON file of prompt token ids, [ids] or [[ids], ...] (a batch)", cxxopts::value<std::string>())(
      "chat", "or: JSONL of conversations ({\"messages\", \"tools\"} per line), continued as the assistant",
      cxxopts::value<std::string>())(
      "run-tools", "with --chat: run the model's tool calls (calculator) and show it the results, as in RL")(
      "max-tool-calls", "with --run-tools: tool calls per row at most", cxxopts::value<int64_t>()->default_value("4"))(
      "tokenizer", "tokenizer directory (default: the model directory if it holds one)", cxxopts::value<std::string>())(
      "max-new-tokens", "tokens to generate per row at most", cxxopts::value<int64_t>()->default_value("256"))(
      "temperature", "0: greedy", cxxopts::value<double>()->default_value("1.0"))(
      "top-p", "nucleus mass kept (1: off)", cxxopts::value<double>()->default_value("1.0"))(
      "top-k", "most likely tokens kept (0: off)", cxxopts::value<int64_t>()->default_value("0"))(
      "seed", "sampling seed (same seed, same prompts: same tokens)", cxxopts::value<uint64_t>()->default_value("0"))(
      "stop-id", "extra stop token id (repeatable; eos and <|im_end|> always stop)", cxxopts::value<std::vector<int64_t>>())(
      "dtype", "compute dtype: fp32 or bf16", cxxopts::value<std::string>()->default_value("fp32"))(
      "dequantize", "INT4 directories: dequantise the packed weights instead of the W4A16 kernel")(
      "adapter", "an HF PEFT LoRA adapter directory applied on top of --model", cxxopts::value<std::string>())(
      "attention", "absorbed (fast) or expanded (reference) latent attention",
      cxxopts::value<std::string>()->default_value("absorbed"))(
      "out", "also write JSON: per row prompt, tokens, text, model/sampling log-probs, finish reason",
      cxxopts::value<std::string>());
  bool help = false;
  const auto parsed = parse_args(options, args, help);
  if (help) return 0;
  const std::string model_dir = required_option(parsed, "model", "generate");
  model::GenerationOptions generation;
  generation.sampling.temperature = parsed["temperature"].as<double>();
  generation.sampling.top_p = parsed["top-p"].as<double>();
  generation.sampling.top_k = parsed["top-k"].as<int64_t>();
  generation.max_new_tokens = parsed["max-new-tokens"].as<int64_t>();
  generation.seed = parsed["seed"].as<uint64_t>();
  const std::string attention = parsed["attention"].as<std::string>();
  check(attention == "absorbed" || attention == "expanded", "--attention \"", attention, "\": expected absorbed or expanded");
  generation.attention = attention == "absorbed" ? model::LatentAttention::kAbsorbed : model::LatentAttention::kExpanded;
  const auto dtype = model::parse_compute_dtype(parsed["dtype"].as<std::string>(), "--dtype");
  // Option errors before the model loads, in the options' own names.
  check(generation.sampling.temperature >= 0, "--temperature (", generation.sampling.temperature, ") must be >= 0");
  check(generation.sampling.top_p > 0 && generation.sampling.top_p <= 1, "--top-p (", generation.sampling.top_p,
        ") must be in (0, 1]");
  check(generation.sampling.top_k >= 0, "--top-k (", generation.sampling.top_k, ") must be >= 0");
  check(generation.max_new_tokens > 0, "--max-new-tokens (", generation.max_new_tokens, ") must be positive");
  const bool run_tools = parsed.count("run-tools") > 0;
  const int64_t max_tool_calls = parsed["max-tool-calls"].as<int64_t>();
  check(!run_tools || parsed.count("chat"), "--run-tools needs --chat (tool calls are read from chat turns)");
  check(max_tool_calls >= 0, "--max-tool-calls (", max_tool_calls, ") must be >= 0");

  const auto tokenizer = data::Tokenizer::load(tokenizer_dir(parsed, model_dir));
  const auto prompts = build_prompts(parsed, tokenizer);
  auto lm = train::load_model(model_dir, model_load_options(parsed));
  const auto& config = lm->model->config;
  check(tokenizer.vocab_size() <= config.vocab_size, "tokenizer vocabulary of ", tokenizer.vocab_size(),
        " tokens does not fit the model's vocab_size ", config.vocab_size);
  lm->compute_dtype = dtype;
  lm->eval();
  check_fits_positions(prompts, generation.max_new_tokens, config, model_dir);
  generation.stop_token_ids = stop_ids(parsed, tokenizer, config);
  if (run_tools) return generate_with_tools(lm, tokenizer, prompts, generation, max_tool_calls, parsed);

  const bool stream = prompts.size() == 1;
  const auto& stops = generation.stop_token_ids;
  const auto start = std::chrono::steady_clock::now();
  const auto rows = model::generate(lm, prompts, generation, [&](const std::vector<int64_t>& tokens_B) {
    const int64_t id = tokens_B[0];
    if (!stream || id < 0 || std::find(stops.begin(), stops.end(), id) != stops.end()) return;
    std::cout << token_text(tokenizer, id) << std::flush;
  });
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  Json report_rows = Json::array();
  int64_t generated = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    std::string text;
    for (const int64_t id : rows[r].tokens) {
      if (std::find(stops.begin(), stops.end(), id) == stops.end()) text += token_text(tokenizer, id);
    }
    generated += static_cast<int64_t>(rows[r].tokens.size());
    if (stream) {
      std::cout << "\n";
    } else {
      std::cout << "=== row " << r << " (" << model::finish_reason_name(rows[r].finish) << ") ===\n" << text << "\n";
    }
    report_rows.push_back({{"prompt", prompts[r]},
                           {"tokens", rows[r].tokens},
                           {"text", text},
                           {"model_logprobs", rows[r].model_logprobs},
                           {"sampling_logprobs", rows[r].sampling_logprobs},
                           {"finish_reason", model::finish_reason_name(rows[r].finish)}});
  }
  const model::KvCache probe(config, 1, 1, dtype);
  std::cerr << "k2forge generate: " << rows.size() << " rows, " << generated << " tokens in " << seconds << " s ("
            << generated / seconds << " tokens/s); latent cache " << probe.bytes_per_token_per_layer()
            << " bytes per token per layer\n";
  if (parsed.count("out")) {
    const Json report = {{"model", model_dir},
                         {"seed", generation.seed},
                         {"temperature", generation.sampling.temperature},
                         {"top_p", generation.sampling.top_p},
                         {"top_k", generation.sampling.top_k},
                         {"dtype", parsed["dtype"].as<std::string>()},
                         {"rows", report_rows}};
    write_text_file_atomic(parsed["out"].as<std::string>(),
                           report.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n");
  }
  return 0;
}

}  // namespace k2f::cli
