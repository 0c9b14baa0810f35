// Training checkpoints (DESIGN.md "Files"): `<run_dir>/step-000123/` holds per-rank safetensors of
// parameters+buffers and of optimizer/RNG state under HF names, and meta.json (step, counters,
// sampler position, resolved recipe, layout, CRC-32C of every file). A checkpoint is written
// under a temporary name and renamed when complete; `latest` names the newest; the last K are
// kept. Loading verifies checksums and falls back to the newest intact checkpoint, saying so.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/json_io.h"
#include "model/safetensors.h"

namespace k2f::train {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// The CPU generator's state, stored among the optimizer tensors so a resumed run draws the same numbers.
inline constexpr const char* kCpuRngStateName = "rng.torch_cpu";

struct LoadedCheckpoint {
  std::string dir;
  int64_t step = 0;
  Json meta;
  std::unique_ptr<model::SafetensorsFile> model;      // parameters and buffers
  std::unique_ptr<model::SafetensorsFile> optimizer;  // optimizer slots and RNG state
};

class CheckpointManager {
 public:
  CheckpointManager(std::string run_dir, int64_t keep, int rank = 0);

  // Writes step `step` atomically, points `latest` at it and prunes beyond `keep`; returns its dir.
  std::string save(int64_t step, const NamedTensors& model_state, const NamedTensors& optimizer_state, Json meta);

  // The newest checkpoint whose files match their checksums (older ones are tried in turn, with a
  // warning naming what failed); nullopt when the run directory has none.
  std::optional<LoadedCheckpoint> load_latest() const;

  // Step numbers of the complete checkpoints present, ascending.
  std::vector<int64_t> steps() const;

  static std::string step_dir_name(int64_t step);

 private:
  LoadedCheckpoint open_verified(int64_t step) const;
  std::string run_dir_;
  int64_t keep_;
  int rank_;
};

// "<kind>-rank00003.safetensors": the file of one rank's "model" or "optimizer" state.
std::string checkpoint_file_name(const std::string& kind, int rank);

// Copies every tensor of `state` from `file`, in order; the first absent or mismatched tensor is
// named in the error (a checkpoint from another model config).
void load_named_state(const model::SafetensorsFile& file, const NamedTensors& state);

}  // namespace k2f::train
