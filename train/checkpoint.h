// Training checkpoints (DESIGN.md "Files"): `<run_dir>/step-000123/` holds, per rank that owns
// any, safetensors files of parameters+buffers and of optimizer/RNG state under HF names, and
// meta.json (step, counters, sampler position, resolved recipe, layout, the size and CRC-32C of
// every file, and an index naming the file, and for ZeRO-1 row slices the rows, of every tensor).
// Under a parallel layout every rank writes only what it owns into one temporary directory; the
// step becomes visible (renamed) only after every rank's part is complete and rank 0 has checked
// the index covers every tensor. `latest` names the newest; the last K are kept. Loading checks
// every file's size, the CRC-32C of the files a reader needs, and falls back to the newest intact
// checkpoint, saying so. Each tensor (or the rows of one a reader asks for) is read from its own
// file: no rank ever needs another rank's memory, at save or at load.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/json_io.h"
#include "model/safetensors.h"
#include "model/weight_source.h"

namespace k2f::train {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// The CPU generator's state, stored among the optimizer tensors so a resumed run draws the same numbers.
inline constexpr const char* kCpuRngStateName = "rng.torch_cpu";

// One kind ("model" or "optimizer") of a checkpoint's tensors, as the index maps them to files:
// a tensor is whole in one file, or (ZeRO-1 optimizer state) split by rows over several. Files
// are opened on first use, after their CRC-32C is checked against meta.json.
class CheckpointTensors : public model::WeightSource {
 public:
  CheckpointTensors(std::string dir, std::string kind, const Json& meta);
  std::string description() const override { return dir_ + " (" + kind_ + " tensors)"; }
  std::vector<std::string> tensor_names() const override { return names_; }
  bool contains(const std::string& name) const override { return pieces_.count(name) > 0; }
  std::vector<int64_t> shape(const std::string& name) override;
  torch::ScalarType dtype(const std::string& name) override;
  torch::Tensor load(const std::string& name) override;
  void load_into(const std::string& name, torch::Tensor& target) override;
  // Rows [first, first + count) of the tensor, read from the pieces that hold them only.
  torch::Tensor load_rows(const std::string& name, int64_t first, int64_t count);
  // The files holding any of `names` (what a reader of those tensors opens).
  std::vector<std::string> files_of(const std::vector<std::string>& names) const;
  void verify(const std::string& file) const;  // its CRC-32C against meta.json, or an error naming it

 private:
  struct Piece {
    std::string file;
    int64_t first = 0;
    int64_t rows = -1;  // -1: the whole tensor
  };
  const std::vector<Piece>& pieces(const std::string& name) const;
  const model::SafetensorsFile& open(const std::string& file);
  std::string dir_, kind_;
  Json files_;
  std::vector<std::string> names_;
  std::map<std::string, std::vector<Piece>> pieces_;
  std::map<std::string, std::vector<int64_t>> shapes_;
  std::map<std::string, std::unique_ptr<model::SafetensorsFile>> open_;
};

struct LoadedCheckpoint {
  std::string dir;
  int64_t step = 0;
  Json meta;
  std::unique_ptr<CheckpointTensors> model;      // parameters and buffers
  std::unique_ptr<CheckpointTensors> optimizer;  // optimizer slots and RNG state
};

// A tensor a rank writes: whole, or rows [first, first + rows of `tensor`) of a tensor of
// `total_rows` rows (a ZeRO-1 shard of optimizer state).
struct ShardTensor {
  std::string name;
  torch::Tensor tensor;
  int64_t first = 0;
  int64_t total_rows = -1;  // -1: whole
};
using ShardTensors = std::vector<ShardTensor>;

class CheckpointManager {
 public:
  CheckpointManager(std::string run_dir, int64_t keep);

  // One process: writes step `step` atomically, points `latest` at it and prunes beyond `keep`;
  // returns its dir.
  std::string save(int64_t step, const NamedTensors& model_state, const NamedTensors& optimizer_state, Json meta);

  // A save by many ranks, in three phases (the caller agrees between them): rank 0 prepares the
  // step's temporary directory; every rank writes its part into it and returns the part's index;
  // rank 0 merges the parts (checking that every tensor is there once and every split tensor's
  // rows are all covered), writes meta.json and makes the step visible. A part's "model_order"
  // lists its model tensors in the order written. abandon_save removes the
  // temporary directory after a failure anywhere; the older steps are untouched.
  std::string begin_save(int64_t step) const;
  std::string temporary_dir(int64_t step) const;  // where begin_save puts the step (the same on every rank)
  Json write_part(const std::string& temporary, int rank, const ShardTensors& model_state,
                  const ShardTensors& optimizer_state) const;
  std::string commit_save(int64_t step, const std::string& temporary, const std::vector<Json>& parts, Json meta);
  void abandon_save(const std::string& temporary) const;
  // The message of a failed save of `step`: what happened and which step remains.
  std::string save_failure(int64_t step, const std::string& what) const;

  // The newest checkpoint whose files are intact (older ones are tried in turn, with a warning
  // naming what failed); nullopt when the run directory has none. Every file's size is checked;
  // the CRC-32C of the files holding `reads` (tensor names, either kind; empty: every file).
  std::optional<LoadedCheckpoint> load_latest(const std::vector<std::string>& reads = {}) const;
  // Step `step`, checked as load_latest checks it (an error names what is damaged).
  LoadedCheckpoint load_step(int64_t step, const std::vector<std::string>& reads = {}) const;

  // Step numbers of the complete checkpoints present, ascending.
  std::vector<int64_t> steps() const;

  static std::string step_dir_name(int64_t step);

 private:
  void publish(int64_t step);  // `latest` and pruning
  std::string run_dir_;
  int64_t keep_;
};

// "<kind>-rank00003.safetensors": the file of one rank's "model" or "optimizer" state.
std::string checkpoint_file_name(const std::string& kind, int rank);

// Copies every tensor of `state` from `source`, in order; the first absent or mismatched tensor is
// named in the error (a checkpoint from another model config).
void load_named_state(model::WeightSource& source, const NamedTensors& state);

}  // namespace k2f::train
