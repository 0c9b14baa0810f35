#include "train/checkpoint.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <set>

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

CheckpointManager::CheckpointManager(std::string run_dir, int64_t keep) : run_dir_(std::move(run_dir)), keep_(keep) {
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

namespace {

// Only names in the index: a tensor is written by one rank, or row slices by several.
Json piece_json(const std::string& file, const ShardTensor& t) {
  Json piece = {{"file", file}};
  if (t.total_rows >= 0) {
    piece["first"] = t.first;
    piece["rows"] = t.tensor.size(0);
  }
  return piece;
}

std::vector<int64_t> whole_shape(const ShardTensor& t) {
  auto shape = t.tensor.sizes().vec();
  if (t.total_rows >= 0) shape.at(0) = t.total_rows;
  return shape;
}

}  // namespace

std::string CheckpointManager::save(int64_t step, const NamedTensors& model_state, const NamedTensors& optimizer_state,
                                    Json meta) {
  const auto whole = [](const NamedTensors& state) {
    ShardTensors out;
    for (const auto& [name, tensor] : state) out.push_back({name, tensor});
    return out;
  };
  std::string temporary;
  try {
    temporary = begin_save(step);
    const Json part = write_part(temporary, 0, whole(model_state), whole(optimizer_state));
    return commit_save(step, temporary, {part}, std::move(meta));
  } catch (const std::exception& e) {
    if (!temporary.empty()) abandon_save(temporary);
    fail(save_failure(step, e.what()));
  }
}

std::string CheckpointManager::temporary_dir(int64_t step) const {
  return (fs::path(run_dir_) / ("." + step_dir_name(step) + ".tmp")).string();
}

std::string CheckpointManager::begin_save(int64_t step) const {
  const fs::path temporary = temporary_dir(step);
  fs::create_directories(run_dir_);
  fs::remove_all(temporary);  // a save that died half way
  fs::create_directories(temporary);
  return temporary.string();
}

Json CheckpointManager::write_part(const std::string& temporary, int rank, const ShardTensors& model_state,
                                   const ShardTensors& optimizer_state) const {
  Json part = {{"files", Json::object()}, {"model", Json::object()}, {"optimizer", Json::object()},
               {"model_order", Json::array()}};
  for (const auto& t : model_state) part["model_order"].push_back(t.name);
  for (const auto& [kind, state] : {std::make_pair(std::string("model"), &model_state),
                                    std::make_pair(std::string("optimizer"), &optimizer_state)}) {
    if (state->empty()) continue;
    const std::string name = checkpoint_file_name(kind, rank);
    const std::string path = (fs::path(temporary) / name).string();
    NamedTensors tensors;
    for (const auto& t : *state) {
      tensors.emplace_back(t.name, t.tensor);
      part[kind][t.name] = {{"shape", whole_shape(t)}, {"piece", piece_json(name, t)}};
    }
    model::write_safetensors(path, tensors);
    part["files"][name] = {{"bytes", fs::file_size(path)}, {"crc32c", crc32c_file(path)}};
  }
  return part;
}

std::string CheckpointManager::commit_save(int64_t step, const std::string& temporary, const std::vector<Json>& parts,
                                           Json meta) {
  Json files = Json::object(), index = {{"model", Json::object()}, {"optimizer", Json::object()}};
  for (const auto& part : parts) {
    for (const auto& [name, record] : part.at("files").items()) files[name] = record;
    for (const char* kind : {"model", "optimizer"}) {
      for (const auto& [name, entry] : part.at(kind).items()) {
        Json& merged = index[kind][name];
        const bool sliced = entry.at("piece").contains("rows");
        if (merged.is_null()) merged = {{"shape", entry.at("shape")}, {"pieces", Json::array()}};
        check(sliced || merged["pieces"].empty(), "checkpoint: ", kind, " tensor \"", name, "\" is written by two ranks");
        merged["pieces"].push_back(entry.at("piece"));
      }
    }
  }
  // Every split tensor's slices cover its rows exactly once, in order.
  for (auto& [name, entry] : index["optimizer"].items()) {
    auto& pieces = entry["pieces"];
    if (!pieces[0].contains("rows")) continue;
    std::vector<Json> sorted(pieces.begin(), pieces.end());
    std::sort(sorted.begin(), sorted.end(), [](const Json& a, const Json& b) { return a["first"] < b["first"]; });
    int64_t next = 0;
    for (const auto& piece : sorted) {
      check(piece["first"].get<int64_t>() == next, "checkpoint: rows ", next, " to ", piece["first"].get<int64_t>(),
            " of optimizer tensor \"", name, "\" are written by no rank");
      next += piece["rows"].get<int64_t>();
    }
    check(next == entry["shape"][0].get<int64_t>(), "checkpoint: rows ", next, " to ", entry["shape"][0].get<int64_t>(),
          " of optimizer tensor \"", name, "\" are written by no rank");
    pieces = sorted;
  }
  meta["step"] = step;
  meta["files"] = files;
  meta["index"] = index;
  write_text_file_atomic((fs::path(temporary) / "meta.json").string(), meta.dump(2) + "\n");
  const fs::path final_dir = fs::path(run_dir_) / step_dir_name(step);
  if (fs::exists(final_dir)) fs::remove_all(final_dir);  // a re-run of the same step replaces it whole
  fs::rename(temporary, final_dir);
  publish(step);
  return final_dir.string();
}

void CheckpointManager::abandon_save(const std::string& temporary) const {
  std::error_code ignored;
  fs::remove_all(temporary, ignored);
}

std::string CheckpointManager::save_failure(int64_t step, const std::string& what) const {
  // Disk full, a permission or quota problem, a rank that failed: nothing of this step stays.
  const auto previous = steps();
  return "checkpoint " + step_dir_name(step) + " in " + run_dir_ + " could not be written (" + what + "); " +
         (previous.empty() ? std::string("no earlier checkpoint exists")
                           : "the previous checkpoint " + step_dir_name(previous.back()) +
                                 " is intact and a rerun resumes from it");
}

void CheckpointManager::publish(int64_t step) {
  write_text_file_atomic((fs::path(run_dir_) / "latest").string(), step_dir_name(step) + "\n");
  auto present = steps();
  for (size_t i = 0; i + keep_ < present.size(); ++i) {
    if (present[i] != step) fs::remove_all(fs::path(run_dir_) / step_dir_name(present[i]));
  }
}

LoadedCheckpoint CheckpointManager::load_step(int64_t step, const std::vector<std::string>& reads) const {
  LoadedCheckpoint loaded;
  loaded.dir = (fs::path(run_dir_) / step_dir_name(step)).string();
  loaded.step = step;
  loaded.meta = read_json_file((fs::path(loaded.dir) / "meta.json").string());
  check(loaded.meta.contains("files") && loaded.meta["files"].is_object(), loaded.dir, "/meta.json: no \"files\" table");
  for (const auto& [name, record] : loaded.meta["files"].items()) {
    const std::string path = (fs::path(loaded.dir) / name).string();
    check(fs::exists(path), path, ": missing");
    const auto bytes = record.at("bytes").get<uint64_t>();
    check(fs::file_size(path) == bytes, path, ": ", fs::file_size(path), " bytes, meta.json says ", bytes, " (truncated?)");
  }
  loaded.model = std::make_unique<CheckpointTensors>(loaded.dir, "model", loaded.meta);
  loaded.optimizer = std::make_unique<CheckpointTensors>(loaded.dir, "optimizer", loaded.meta);
  std::set<std::string> needed;
  if (reads.empty()) {
    for (const auto& [name, record] : loaded.meta["files"].items()) needed.insert(name);
  } else {
    for (const auto* kind : {loaded.model.get(), loaded.optimizer.get()})
      for (const auto& file : kind->files_of(reads)) needed.insert(file);
  }
  for (const auto& file : needed) loaded.model->verify(file);
  return loaded;
}

std::optional<LoadedCheckpoint> CheckpointManager::load_latest(const std::vector<std::string>& reads) const {
  auto present = steps();
  for (auto it = present.rbegin(); it != present.rend(); ++it) {
    try {
      return load_step(*it, reads);
    } catch (const Error& e) {
      const bool older_exists = std::next(it) != present.rend();
      log::warn("checkpoint ", step_dir_name(*it), " is damaged: ", e.what(),
                older_exists ? "; falling back to " + step_dir_name(*std::next(it)) : "; no older checkpoint");
    }
  }
  if (!present.empty()) fail(run_dir_, ": no intact checkpoint among ", present.size(), " found");
  return std::nullopt;
}

CheckpointTensors::CheckpointTensors(std::string dir, std::string kind, const Json& meta)
    : dir_(std::move(dir)), kind_(std::move(kind)), files_(meta.value("files", Json::object())) {
  if (meta.contains("index")) {
    for (const auto& [name, entry] : meta.at("index").at(kind_).items()) {
      names_.push_back(name);
      shapes_[name] = entry.at("shape").get<std::vector<int64_t>>();
      for (const auto& piece : entry.at("pieces"))
        pieces_[name].push_back({piece.at("file").get<std::string>(), piece.value("first", int64_t{0}),
                                 piece.value("rows", int64_t{-1})});
    }
    return;
  }
  // Written before checkpoints had an index: one file of each kind, every tensor whole.
  const std::string file = checkpoint_file_name(kind_, 0);
  for (const auto& name : open(file).names()) {
    names_.push_back(name);
    pieces_[name].push_back({file});
  }
}

void CheckpointTensors::verify(const std::string& file) const {
  const std::string path = (fs::path(dir_) / file).string();
  check(files_.contains(file), path, ": not in meta.json's \"files\"");
  const auto expected = files_.at(file).at("crc32c").get<uint32_t>();
  const auto actual = crc32c_file(path);
  check(actual == expected, path, ": checksum mismatch (crc32c ", actual, ", meta.json says ", expected, ")");
}

std::vector<std::string> CheckpointTensors::files_of(const std::vector<std::string>& names) const {
  std::set<std::string> files;
  for (const auto& name : names) {
    const auto found = pieces_.find(name);
    if (found == pieces_.end()) continue;
    for (const auto& piece : found->second) files.insert(piece.file);
  }
  return {files.begin(), files.end()};
}

const std::vector<CheckpointTensors::Piece>& CheckpointTensors::pieces(const std::string& name) const {
  const auto found = pieces_.find(name);
  check(found != pieces_.end(), description(), ": tensor \"", name, "\" is missing (a checkpoint of a different model config?)");
  return found->second;
}

const model::SafetensorsFile& CheckpointTensors::open(const std::string& file) {
  auto& slot = open_[file];
  if (!slot) slot = std::make_unique<model::SafetensorsFile>((fs::path(dir_) / file).string());
  return *slot;
}

std::vector<int64_t> CheckpointTensors::shape(const std::string& name) {
  const auto& first = pieces(name).front();
  if (shapes_.count(name)) return shapes_.at(name);
  return open(first.file).entry(name).shape;
}

torch::ScalarType CheckpointTensors::dtype(const std::string& name) {
  return model::torch_dtype(open(pieces(name).front().file).entry(name).dtype);
}

torch::Tensor CheckpointTensors::load(const std::string& name) {
  const auto& parts = pieces(name);
  if (parts.front().rows < 0) return open(parts.front().file).load(name);
  auto whole = torch::empty(shape(name), torch::TensorOptions().dtype(dtype(name)));
  for (const auto& piece : parts) whole.narrow(0, piece.first, piece.rows).copy_(open(piece.file).load(name));
  return whole;
}

torch::Tensor CheckpointTensors::load_rows(const std::string& name, int64_t first, int64_t count) {
  const auto& parts = pieces(name);
  if (parts.front().rows < 0) return open(parts.front().file).load(name).narrow(0, first, count);
  auto sizes = shape(name);
  check(first >= 0 && first + count <= sizes.at(0), description(), ": rows ", first, " to ", first + count, " of \"", name,
        "\" are outside its ", sizes.at(0), " rows");
  sizes[0] = count;
  auto out = torch::empty(sizes, torch::TensorOptions().dtype(dtype(name)));
  int64_t covered = 0;
  for (const auto& piece : parts) {
    const int64_t begin = std::max(first, piece.first), end = std::min(first + count, piece.first + piece.rows);
    if (begin >= end) continue;
    out.narrow(0, begin - first, end - begin).copy_(open(piece.file).load(name).narrow(0, begin - piece.first, end - begin));
    covered += end - begin;
  }
  check(covered == count, description(), ": rows ", first, " to ", first + count, " of \"", name, "\" are not all in the index");
  return out;
}

void CheckpointTensors::load_into(const std::string& name, torch::Tensor& target) {
  const auto& parts = pieces(name);
  if (parts.front().rows < 0) return model::load_into(open(parts.front().file), name, target);
  const auto stored = shape(name);
  check(stored == target.sizes().vec(), description(), ": \"", name, "\": expected shape ", Json(target.sizes().vec()).dump(),
        ", got ", Json(stored).dump());
  torch::NoGradGuard no_grad;
  target.copy_(load(name));
}

void load_named_state(model::WeightSource& source, const NamedTensors& state) {
  for (const auto& [name, tensor] : state) {
    auto target = tensor;
    check(source.contains(name), source.description(), ": tensor \"", name,
          "\" is missing (a checkpoint of a different model config?)");
    source.load_into(name, target);
  }
}

}  // namespace k2f::train
