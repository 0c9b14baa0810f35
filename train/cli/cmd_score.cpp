// `k2forge score`: per-token log-probabilities of JSON token rows under an HF model directory,
// one row at a time (rows differ in length), fp32 by default.
#include <cmath>
#include <iostream>

#include "base/error.h"
#include "base/json_io.h"
#include "model/hf_checkpoint.h"
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

}  // namespace

int run_score(const Args& args) {
  cxxopts::Options options("k2forge score", "Per-token log-probabilities: entry t of row i is log p(row[t+1] | row[..t])");
  options.add_options()("model", "HF model directory", cxxopts::value<std::string>())(
      "tokens", "JSON array of token-id arrays", cxxopts::value<std::string>())(
      "out", "output JSON {\"logprobs\": [[...]], \"nll_mean\": x}", cxxopts::value<std::string>())(
      "dtype", "compute dtype: fp32 or bf16", cxxopts::value<std::string>()->default_value("fp32"));
  bool help = false;
  const auto parsed = parse_args(options, args, help);
  if (help) return 0;
  const std::string model_dir = required_option(parsed, "model", "score");
  const std::string tokens_path = required_option(parsed, "tokens", "score");
  const std::string out_path = required_option(parsed, "out", "score");
  const auto dtype = model::parse_compute_dtype(parsed["dtype"].as<std::string>(), "--dtype");

  model::HfDirectory directory(model_dir);
  const auto rows = read_token_rows(tokens_path, directory.config().vocab_size);
  model::KimiForCausalLM lm(directory.config());
  model::load_hf_weights(*lm, directory);
  lm->compute_dtype = dtype;
  lm->eval();

  torch::NoGradGuard no_grad;
  Json logprobs = Json::array();
  double nll_sum = 0;
  int64_t count = 0;
  for (const auto& row : rows) {
    Json values = Json::array();
    if (row.size() >= 2) {
      const auto tokens_1T = torch::tensor(row, torch::kInt64).unsqueeze(0);
      const auto lp = model::next_token_logprobs(lm->forward(tokens_1T), tokens_1T).squeeze(0).to(torch::kFloat64);
      for (int64_t t = 0; t < lp.size(0); ++t) {
        const double v = lp[t].item<double>();
        values.push_back(v);
        nll_sum -= v;
        ++count;
      }
    }
    logprobs.push_back(std::move(values));
  }
  Json out = {{"logprobs", logprobs}, {"nll_mean", count > 0 ? Json(nll_sum / count) : Json(nullptr)}};
  write_text_file_atomic(out_path, out.dump() + "\n");
  std::cerr << "k2forge score: " << rows.size() << " rows, " << count << " predictions, nll_mean "
            << (count > 0 ? nll_sum / count : NAN) << " -> " << out_path << "\n";
  return 0;
}

}  // namespace k2f::cli
