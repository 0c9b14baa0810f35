#include "train/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <regex>

#include "base/crc32c.h"
#include "base/error.h"
#include "base/log.h"

namespace k2f::train {
namespace fs = std::filesystem;

std::string checkpoint_file_name(const std::string& kind, int rank) {
  char buffer[64];
  std::snprintf(buffer, sizeof(buffer), "%s-rank%05d.safetensors", kind.c_str(), rank);
  return buffer;
}

CheckpointManager::CheckpointManager(std::string run_dir, int64_t keep, int rank)
    : run_dir_(std::move(run_dir)), keep_(keep), rank_(rank) {
  check(keep_ >= 1, "checkpoint.keep (", keep_, ") must be >= 1");
}

std::string CheckpointManager::step_dir_name(int64_t step) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "step-%06lld", static_cast<long long>(step));
  return buffer;
}

std::vector<int64_t> CheckpointManager::steps() const {
  std::vector<int64_t> found;
  if (!fs::is_directory(run_dir_)) return found;
  static const std::regex pattern("step-([0-9]+)");
  for (const auto& entry : fs::directory_iterator(run_dir_)) {
    std::smatch match;
    const std::string name = entry.path().filename().string();
    if (entry.is_directory() && std::regex_match(name, match, pattern)) found.push_back(std::stoll(match[1]));
  }
  std::sort(found.begin(), found.end());
  return found;
}

std::string CheckpointManager::save(int64_t step, const NamedTensors& model_state, const NamedTensors& optimizer_state,
                                    Json meta) {
  fs::create_directories(run_dir_);
  const fs::path final_dir = fs::path(run_dir_) / step_dir_name(step);
  const fs::path temporary = fs::path(run_dir_) / ("." + step_dir_name(step) + ".tmp-" + std::to_string(::getpid()));
  try {
    fs::remove_all(temporary);
    fs::create_directories(temporary);
    Json files = Json::object();
    for (const auto& [kind, state] : {std::make_pair(std::string("model"), &model_state),
                                      std::make_pair(std::string("optimizer"), &optimizer_state)}) {
      const std::string name = checkpoint_file_name(kind, rank_);
      const std::string path = (temporary / name).string();
      model::write_safetensors(path, *state);
      files[name] = {{"bytes", fs::file_size(path)}, {"crc32c", crc32c_file(path)}};
    }
    meta["step"] = step;
    meta["files"] = files;
    write_text_file_atomic((temporary / "meta.json").string(), meta.dump(2) + "\n");
    if (fs::exists(final_dir)) fs::remove_all(final_dir);  // a re-run of the same step replaces it whole
    fs::rename(temporary, final_dir);
  } catch (const std::exception& e) {
    // Disk full, a permission or quota problem: nothing of this step stays, the older ones are untouched.
    std::error_code ignored;
    fs::remove_all(temporary, ignored);
    const auto previous = steps();
    fail("checkpoint ", step_dir_name(step), " in ", run_dir_, " could not be written (", e.what(), "); ",
         previous.empty() ? std::string("no earlier checkpoint exists")
                          : "the previous checkpoint " + step_dir_name(previous.back()) + " is intact and a rerun resumes from it");
  }
  write_text_file_atomic((fs::path(run_dir_) / "latest").string(), step_dir_name(step) + "\n");
  auto present = steps();
  for (size_t i = 0; i + keep_ < present.size(); ++i) {
    if (present[i] != step) fs::remove_all(fs::path(run_dir_) / step_dir_name(present[i]));
  }
  return final_dir.string();
}

LoadedCheckpoint CheckpointManager::open_verified(int64_t step) const {
  LoadedCheckpoint loaded;
  loaded.dir = (fs::path(run_dir_) / step_dir_name(step)).string();
  loaded.step = step;
  loaded.meta = read_json_file((fs::path(loaded.dir) / "meta.json").string());
  check(loaded.meta.contains("files") && loaded.meta["files"].is_object(), loaded.dir, "/meta.json: no \"files\" table");
  for (auto it = loaded.meta["files"].begin(); it != loaded.meta["files"].end(); ++it) {
    const std::string path = (fs::path(loaded.dir) / it.key()).string();
    check(fs::exists(path), path, ": missing");
    const auto expected = it.value().at("crc32c").get<uint32_t>();
    const auto actual = crc32c_file(path);
    check(actual == expected, path, ": checksum mismatch (crc32c ", actual, ", meta.json says ", expected, ")");
  }
  loaded.model = std::make_unique<model::SafetensorsFile>((fs::path(loaded.dir) / checkpoint_file_name("model", rank_)).string());
  loaded.optimizer =
      std::make_unique<model::SafetensorsFile>((fs::path(loaded.dir) / checkpoint_file_name("optimizer", rank_)).string());
  return loaded;
}

std::optional<LoadedCheckpoint> CheckpointManager::load_latest() const {
  auto present = steps();
  for (auto it = present.rbegin(); it != present.rend(); ++it) {
    try {
      return open_verified(*it);
    } catch (const Error& e) {
      const bool older_exists = std::next(it) != present.rend();
      log::warn("checkpoint ", step_dir_name(*it), " is damaged: ", e.what(),
                older_exists ? "; falling back to " + step_dir_name(*std::next(it)) : "; no older checkpoint");
    }
  }
  if (!present.empty()) fail(run_dir_, ": no intact checkpoint among ", present.size(), " found");
  return std::nullopt;
}

void load_named_state(const model::SafetensorsFile& file, const NamedTensors& state) {
  for (const auto& [name, tensor] : state) {
    auto target = tensor;
    check(file.contains(name), file.path(), ": tensor \"", name,
          "\" is missing (a checkpoint of a different model config?)");
    model::load_into(file, name, target);
  }
}

}  // namespace k2f::train
