// Process bootstrap: who am I (rank, world, local rank) from whichever launcher started us
// (OpenMPI, MPICH/PMI, torchrun, Slurm, or nothing = one process), then a c10d TCPStore rendezvous
// and the world process group. The world group is always Gloo: it carries agreement on failures
// and host-side metadata, and exists before a recipe (and so the device) is known. The groups made
// later (data, expert, pipeline) use the chosen backend: Gloo on CPU, NCCL for CUDA. The
// environment is read through an injectable lookup so the parsing is unit-tested without
// processes; defaults work on one host.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/Store.hpp>

#include "base/error.h"
#include "parallel/comm.h"

namespace k2f::parallel {

using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The process environment (std::getenv) and a fixed map (tests).
EnvLookup process_env();
EnvLookup env_from_map(std::map<std::string, std::string> values);

struct LaunchEnv {
  std::string launcher = "single";  // "openmpi" | "mpich" | "torchrun" | "slurm" | "single"
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_size = 1;  // ranks on this host
  std::string master_addr = "127.0.0.1";
  bool master_addr_set = false;  // MASTER_ADDR was given
  int master_port = 0;           // MASTER_PORT, else derived from job_id
  std::string job_id;            // launcher's job id ("" when none), seeds the default port
  bool multi_host() const { return local_size < world_size; }
};

// Port used when MASTER_PORT is unset: 29500 + hash(job_id) % 3000, deterministic across ranks of a
// job, different between concurrent jobs, below Linux's ephemeral range (32768+).
int default_master_port(const std::string& job_id);

// Reads the first launcher whose variables are present, in the order OpenMPI, MPICH/PMI, torchrun,
// Slurm. Throws k2f::Error naming the variable and value when a value is not an integer or
// inconsistent (rank >= world size, local rank >= local size, ...).
LaunchEnv detect_launch_env(const EnvLookup& env = process_env());

struct DistOptions {
  // Of the groups new_group makes: "auto" (nccl when device is cuda, else gloo) | "gloo" | "nccl"
  std::string backend = "auto";
  std::string device = "cpu";    // "cpu" | "cuda"
  double timeout_s = 300;        // every collective and the rendezvous
  bool configure_threads = true;  // intra-op threads = cores / local ranks (or OMP_NUM_THREADS)
  void validate(const std::string& prefix = "parallel") const;
};

// Thrown by check_on_all_ranks: every rank already holds the same message, no further agreement.
class AgreedFailure : public Error {
 public:
  using Error::Error;
};

class DistributedContext {
 public:
  LaunchEnv env;
  std::string backend;  // of the groups new_group makes: "gloo" | "nccl" (the world group is Gloo)
  std::chrono::milliseconds timeout{0};
  c10::intrusive_ptr<c10d::Store> store;
  Group world;

  int rank() const { return env.rank; }
  int world_size() const { return env.world_size; }

  // A process group over `ranks` (global ranks, ascending, this rank need not be in it: then null).
  // Rendezvous through its own prefix of the store (tag, ranks and how many such groups this rank
  // made before). Every member must create the same groups in the same order (see
  // create_process_groups), since creation blocks until all members arrive.
  Group new_group(const std::vector<int>& ranks, const std::string& tag);

  // Sets the backend of the groups made from now on (every rank alike). "nccl" needs a build with
  // NCCL and makes cuda:(local rank % visible GPUs) this process's current device.
  void use_backend(const std::string& name);

  // Runs `body` (typically config validation) on every rank, then agrees: if it threw k2f::Error on
  // any rank, every rank throws the lowest failing rank's message ("rank R: ...") instead of
  // hanging in a later collective.
  void check_on_all_ranks(const std::function<void()>& body);

  // A rank that failed mid-run (anywhere but check_on_all_ranks) calls this with its message, as
  // does every rank whose collective then broke. The first caller's message is published in the
  // store and returned to every caller ("rank R: ..."), so all ranks exit with the same reason.
  // Only after claiming does a rank call `release_groups` (dropping the trainer's process groups)
  // and release the world group: peers blocked in a collective or a receive with this rank then
  // fail at once rather than at the collective timeout, and arrive second. Waits at most `wait`
  // for the others to arrive, because rank 0 hosts the store. Without a reachable store it
  // returns this rank's own message.
  std::string agree_on_failure(const std::string& local_message, std::chrono::milliseconds wait,
                               const std::function<void()>& release_groups = {});

 private:
  friend DistributedContext init_distributed(const LaunchEnv& env, const DistOptions& options);
  int64_t agreement_round_ = 0;
  std::map<std::string, int> groups_created_;  // by store prefix: members count alike

  Group make_group_of(const std::vector<int>& ranks, const std::string& tag, const std::string& group_backend);
};

DistributedContext init_distributed(const LaunchEnv& env, const DistOptions& options = {});

}  // namespace k2f::parallel
