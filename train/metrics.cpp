#include "train/metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "base/error.h"

namespace k2f::train {
namespace {

double max_of(const std::vector<double>& values) {
  return values.empty() ? 0.0 : *std::max_element(values.begin(), values.end());
}

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(seconds);
  std::ostringstream out;
  if (s >= 3600) out << s / 3600 << "h";
  if (s >= 60) out << (s % 3600) / 60 << "m";
  out << s % 60 << "s";
  return out.str();
}

}  // namespace

void keep_metrics_through_step(const std::string& path, int64_t last_step) {
  if (!std::filesystem::exists(path)) return;
  std::ifstream in(path);
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      if (Json::parse(line).at("step").get<int64_t>() <= last_step) kept += line + "\n";
    } catch (const std::exception&) {
      // a torn last line from an interrupted write is dropped
    }
  }
  write_text_file_atomic(path, kept);
}

Json StepMetrics::to_json() const {
  Json json = {{"step", step},
          {"loss", loss},
          {"aux_loss", aux_loss},
          {"lr", lr},
          {"grad_norm", grad_norm},
          {"tokens_per_s", tokens_per_s},
          {"model_flops_per_s", model_flops_per_s},
          {"mfu", mfu},
          {"max_qk_logit", max_qk_logit},
          {"qk_heads_clipped", qk_heads_clipped},
          {"expert_imbalance", expert_imbalance},
          {"max_expert_imbalance", max_of(expert_imbalance)},
          {"tokens_seen", tokens_seen},
          {"skipped", skipped},
          {"skipped_steps", skipped_steps},
          {"rss_bytes", rss_bytes},
          {"peak_rss_bytes", peak_rss_bytes},
          {"seconds", seconds},
          {"time_split", {{"forward", forward_seconds}, {"backward", backward_seconds},
                          {"optimizer", optimizer_seconds}, {"data", data_seconds},
                          {"pipeline_wait", pipeline_wait_seconds}, {"grad_sync", grad_sync_seconds},
                          {"communication", communication_seconds}}}};
  if (!quant_error.empty()) {
    Json errors = Json::object();
    for (const auto& [layer, error] : quant_error) errors[layer] = error;
    json["quant_error"] = errors;
  }
  return json;
}

int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t pages_total = 0, pages_resident = 0;
  if (!(statm >> pages_total >> pages_resident)) return 0;
  return pages_resident * static_cast<int64_t>(::sysconf(_SC_PAGESIZE));
}

int64_t peak_resident_bytes() {
  struct rusage usage {};
  if (::getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports kilobytes
}

MetricsLogger::MetricsLogger(const std::string& run_dir, int64_t total_steps, int64_t resumed_step, bool tensorboard,
                             bool console)
    : jsonl_path_((std::filesystem::path(run_dir) / "metrics.jsonl").string()),
      total_steps_(total_steps),
      first_step_(resumed_step),
      console_(console),
      interactive_(console && ::isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()) {
  std::filesystem::create_directories(run_dir);
  keep_metrics_through_step(jsonl_path_, resumed_step);
  jsonl_.open(jsonl_path_, std::ios::app);
  check(jsonl_.good(), jsonl_path_, ": cannot open for appending");
  if (tensorboard) tensorboard_ = std::make_unique<TensorBoardWriter>((std::filesystem::path(run_dir) / "tensorboard").string());
}

void MetricsLogger::log(const StepMetrics& m) {
  jsonl_ << m.to_json().dump() << "\n";
  jsonl_.flush();
  if (tensorboard_) {
    tensorboard_->add_scalars(m.step, {{"train/loss", m.loss},
                                       {"train/lr", m.lr},
                                       {"train/grad_norm", m.grad_norm},
                                       {"train/tokens_per_s", m.tokens_per_s},
                                       {"train/mfu", m.mfu},
                                       {"train/max_qk_logit", m.max_qk_logit},
                                       {"train/max_expert_imbalance", max_of(m.expert_imbalance)},
                                       {"train/aux_loss", m.aux_loss}});
    std::vector<std::pair<std::string, double>> errors;
    for (const auto& [layer, error] : m.quant_error) errors.emplace_back("quant_error/" + layer, error);
    if (!errors.empty()) tensorboard_->add_scalars(m.step, errors);
  }
  if (!console_) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double per_step = elapsed / static_cast<double>(std::max<int64_t>(1, m.step - first_step_));
  const double eta = per_step * static_cast<double>(total_steps_ - m.step);
  char line[512];
  std::snprintf(line, sizeof(line),
                "step %lld/%lld  loss %.4f  lr %.3g  gnorm %.3f  tok/s %.0f  mfu %.1f%%  qk %.1f  imb %.2f  eta %s",
                static_cast<long long>(m.step), static_cast<long long>(total_steps_), m.loss, m.lr, m.grad_norm,
                m.tokens_per_s, 100.0 * m.mfu, m.max_qk_logit, max_of(m.expert_imbalance), format_duration(eta).c_str());
  if (interactive_) {
    const int width = 24;
    const int filled = static_cast<int>(width * m.step / std::max<int64_t>(1, total_steps_));
    std::cerr << "\r[" << std::string(filled, '=') << std::string(width - filled, ' ') << "] " << line << "   "
              << std::flush;
  } else {
    std::cerr << line << "\n";
  }
}

void MetricsLogger::finish() {
  if (interactive_) std::cerr << "\n";
}

}  // namespace k2f::train
