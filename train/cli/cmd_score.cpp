// `k2forge score`: per-token log-probabilities of token rows under an HF model directory or a
// training checkpoint, one row at a time (rows differ in length), fp32 by default. Rows come from
// a JSON file of token ids, from text documents (.jsonl/.txt) cut into rows by a tokenizer, or
// from a token store, whose loss mask then decides which predictions nll_mean averages.
#include <algorithm>
#include <cmath>
#include <iostream>

#include "base/error.h"
#include "base/json_io.h"
#include "data/document_reader.h"
#include "data/token_store.h"
#include "data/tokenizer.h"
#include "model/hf_checkpoint.h"
#include "train/model_loading.h"
#include "train/cli/command.h"

namespace k2f::cli {
namespace {

std::vector<std::vector<int64_t>> read_token_rows(const std::string& path, int64_t vocab_size) {
  const Json json = read_json_file(path);
  check(json.is_array(), path, ": expected a JSON array of token-id arrays");
  std::vector<std::vector<int64_t>> rows;
  for (size_t i = 0; i < json.size(); ++i) {
    check(json[i].is_array(), path, ": row ", i, " must be an array of token ids, got ", json[i].dump());
    std::vector<int64_t> row;
    for (size_t t = 0; t < json[i].size(); ++t) {
      const Json& id = json[i][t];
      check(id.is_number_integer(), path, ": row ", i, ", position ", t, ": expected an integer token id, got ",
            id.dump());
      const int64_t value = id.get<int64_t>();
      check(value >= 0 && value < vocab_size, path, ": row ", i, ", position ", t, ": token id ", value,
            " is outside the vocabulary [0, ", vocab_size, ")");
      row.push_back(value);
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

// Each document encoded (plus EOS) and cut into rows of at most `row_tokens` tokens.
std::vector<std::vector<int64_t>> encode_text_rows(const std::string& path, const std::string& tokenizer_dir,
                                                   int64_t row_tokens, int64_t vocab_size) {
  const auto tokenizer = data::Tokenizer::load(tokenizer_dir);
  check(tokenizer.vocab_size() <= vocab_size, tokenizer_dir, ": vocabulary of ", tokenizer.vocab_size(),
        " tokens does not fit the model's vocab_size ", vocab_size);
  data::DocumentReader reader(path);
  std::vector<std::vector<int64_t>> rows;
  std::string text;
  while (reader.next(text)) {
    auto ids = tokenizer.encode(text);
    ids.push_back(tokenizer.eos_id());
    for (size_t start = 0; start < ids.size(); start += static_cast<size_t>(row_tokens)) {
      const size_t end = std::min(ids.size(), start + static_cast<size_t>(row_tokens));
      rows.emplace_back(ids.begin() + static_cast<std::ptrdiff_t>(start), ids.begin() + static_cast<std::ptrdiff_t>(end));
    }
  }
  check(!rows.empty(), path, ": no documents to score");
  return rows;
}

// Each document of a token store cut into rows of at most `row_tokens` tokens, with the store's
// loss mask (1 where a token is a target; every token when the store has none).
struct StoreRows {
  std::vector<std::vector<int64_t>> rows;
  std::vector<std::vector<uint8_t>> targets;
};
StoreRows read_store_rows(const std::string& path, int64_t row_tokens, int64_t vocab_size) {
  const data::TokenStore store(path);
  check(store.vocab_size() <= vocab_size, path, ": a store of vocab_size ", store.vocab_size(),
        " does not fit the model's vocab_size ", vocab_size);
  StoreRows out;
  const auto& offsets = store.doc_offsets();
  for (size_t d = 0; d + 1 < offsets.size(); ++d) {
    for (int64_t start = offsets[d]; start < offsets[d + 1]; start += row_tokens) {
      const int64_t count = std::min(row_tokens, offsets[d + 1] - start);
      const auto ids = store.read_tokens(start, count);
      std::vector<uint8_t> mask(static_cast<size_t>(count), 1);
      if (store.has_loss_mask()) store.read_loss_mask(start, count, mask.data());
      out.rows.emplace_back(ids.begin(), ids.end());
      out.targets.push_back(std::move(mask));
    }
  }
  check(!out.rows.empty(), path, ": no documents to score");
  return out;
}

}  // namespace

int run_score(const Args& args) {
  cxxopts::Options options("k2forge score", "Per-token log-probabilities: entry t of row i is log p(row[t+1] | row[..t])");
  options.add_options()("model", "HF model directory (bf16, FP8-block or INT4) or training checkpoint", cxxopts::value<std::string>())(
      "tokens", "JSON array of token-id arrays", cxxopts::value<std::string>())(
      "text", "or: text documents (.jsonl with \"text\", or .txt paragraphs)", cxxopts::value<std::string>())(
      "store", "or: a token store (.h5); nll_mean counts only its loss-mask targets (a chat store: what the "
      "assistant writes)", cxxopts::value<std::string>())(
      "tokenizer", "with --text: tokenizer directory", cxxopts::value<std::string>())(
      "row-tokens", "with --text or --store: tokens per scored row", cxxopts::value<int64_t>()->default_value("256"))(
      "out", "output JSON {\"logprobs\": [[...]], \"nll_mean\": x}", cxxopts::value<std::string>())(
      "dtype", "compute dtype: fp32 or bf16", cxxopts::value<std::string>()->default_value("fp32"))(
      "dequantize", "INT4 directories: dequantise the packed weights instead of the W4A16 kernel")(
      "adapter", "an HF PEFT LoRA adapter directory applied on top of --model", cxxopts::value<std::string>());
  bool help = false;
  const auto parsed = parse_args(options, args, help);
  if (help) return 0;
  const std::string model_dir = required_option(parsed, "model", "score");
  check(parsed.count("tokens") + parsed.count("text") + parsed.count("store") == 1,
        "give exactly one of --tokens FILE, --text FILE or --store FILE.h5");
  const std::string out_path = required_option(parsed, "out", "score");
  const auto dtype = model::parse_compute_dtype(parsed["dtype"].as<std::string>(), "--dtype");
  const int64_t row_tokens = parsed["row-tokens"].as<int64_t>();
  check(row_tokens >= 2, "--row-tokens (", row_tokens, ") must be >= 2");

  auto lm = train::load_model(model_dir, model_load_options(parsed));
  const int64_t vocab_size = lm->model->config.vocab_size;
  StoreRows scored;
  if (parsed.count("store")) {
    scored = read_store_rows(parsed["store"].as<std::string>(), row_tokens, vocab_size);
  } else {
    scored.rows = parsed.count("tokens")
                      ? read_token_rows(parsed["tokens"].as<std::string>(), vocab_size)
                      : encode_text_rows(parsed["text"].as<std::string>(), required_option(parsed, "tokenizer", "score"),
                                         row_tokens, vocab_size);
  }
  const auto& rows = scored.rows;
  lm->compute_dtype = dtype;
  lm->eval();

  torch::NoGradGuard no_grad;
  Json logprobs = Json::array();
  double nll_sum = 0;
  int64_t count = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto& row = rows[r];
    Json values = Json::array();
    if (row.size() >= 2) {
      const auto tokens_1T = torch::tensor(row, torch::kInt64).unsqueeze(0);
      const auto lp = model::next_token_logprobs(lm->forward(tokens_1T), tokens_1T).squeeze(0).to(torch::kFloat64);
      for (int64_t t = 0; t < lp.size(0); ++t) {
        const double v = lp[t].item<double>();
        values.push_back(v);
        if (!scored.targets.empty() && scored.targets[r][static_cast<size_t>(t) + 1] == 0) continue;
        nll_sum -= v;
        ++count;
      }
    }
    logprobs.push_back(std::move(values));
  }
  Json out = {{"logprobs", logprobs}, {"nll_mean", count > 0 ? Json(nll_sum / count) : Json(nullptr)}, {"predictions", count}};
  write_text_file_atomic(out_path, out.dump() + "\n");
  std::cerr << "k2forge score: " << rows.size() << " rows, " << count << " predictions, nll_mean "
            << (count > 0 ? nll_sum / count : NAN) << " -> " << out_path << "\n";
  return 0;
}

}  // namespace k2f::cli
