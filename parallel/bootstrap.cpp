#include "parallel/bootstrap.h"

#include <cstdlib>
#include <sstream>
#include <thread>

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#if K2F_WITH_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL
#endif
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "base/error.h"
#include "base/log.h"
#include "base/threads.h"

namespace k2f::parallel {

namespace {

// ---- environment parsing ---------------------------------------------------------------------

std::optional<int64_t> read_int(const EnvLookup& env, const std::string& name) {
  const auto value = env(name);
  if (!value) return std::nullopt;
  size_t used = 0;
  int64_t parsed = 0;
  try {
    parsed = std::stoll(*value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  check(used > 0 && used == value->size(), name, " (\"", *value, "\") must be an integer");
  return parsed;
}

int64_t require_int(const EnvLookup& env, const std::string& name, const std::string& because) {
  const auto value = read_int(env, name);
  check(value.has_value(), name, " must be set when ", because, " is");
  return *value;
}

std::string first_set(const EnvLookup& env, const std::vector<std::string>& names) {
  for (const auto& name : names) {
    if (auto value = env(name); value && !value->empty()) return *value;
  }
  return "";
}

// SLURM_TASKS_PER_NODE looks like "2(x3),1": two tasks on each of three nodes, then one.
std::vector<int64_t> expand_slurm_tasks_per_node(const std::string& text) {
  std::vector<int64_t> per_node;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    int64_t tasks = 0, repeat = 1;
    char open = 0, x = 0, close = 0;
    std::istringstream in(item);
    bool ok = static_cast<bool>(in >> tasks);
    if (ok && in.peek() == '(') ok = static_cast<bool>(in >> open >> x >> repeat >> close) && x == 'x' && close == ')';
    ok = ok && in.peek() == EOF && tasks >= 1 && repeat >= 1;
    check(ok, "SLURM_TASKS_PER_NODE (\"", text, "\") is not of the form 2(x3),1");
    per_node.insert(per_node.end(), static_cast<size_t>(repeat), tasks);
  }
  check(!per_node.empty(), "SLURM_TASKS_PER_NODE (\"", text, "\") is not of the form 2(x3),1");
  return per_node;
}

// The names a launcher uses for rank / world / local rank / local size.
struct LauncherVars {
  std::string launcher, rank, world, local_rank, local_size;
};

void read_ranks(const EnvLookup& env, const LauncherVars& v, LaunchEnv& out) {
  const int64_t rank = require_int(env, v.rank, v.rank);
  const int64_t world = require_int(env, v.world, v.rank);
  check(world >= 1, v.world, " (", world, ") must be >= 1");
  check(rank >= 0 && rank < world, v.rank, " (", rank, ") must be in [0, ", v.world, " (", world, "))");
  // Without local variables all ranks are taken to share this host.
  const auto local_rank = read_int(env, v.local_rank);
  const auto local_size = v.local_size.empty() ? std::nullopt : read_int(env, v.local_size);
  out.launcher = v.launcher;
  out.rank = static_cast<int>(rank);
  out.world_size = static_cast<int>(world);
  out.local_rank = static_cast<int>(local_rank.value_or(rank));
  out.local_size = static_cast<int>(local_size.value_or(world));
  check(out.local_size >= 1 && out.local_size <= world, v.local_size, " (", out.local_size, ") must be in [1, ",
        v.world, " (", world, ")]");
  check(out.local_rank >= 0 && out.local_rank < out.local_size, v.local_rank, " (", out.local_rank,
        ") must be in [0, local size ", out.local_size, ")");
}

uint64_t fnv1a(const std::string& text) {
  uint64_t hash = 1469598103934665603ull;
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ull;
  return hash;
}

// ---- process groups ---------------------------------------------------------------------------

std::shared_ptr<::gloo::transport::Device> gloo_device(const LaunchEnv& env) {
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"); interface != nullptr && *interface != '\0') {
    return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  }
  if (!env.multi_host()) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

Group make_group(const DistributedContext& ctx, const std::string& backend, const c10::intrusive_ptr<c10d::Store>& store,
                 int rank, int size) {
  if (backend == "nccl") {
#if K2F_WITH_NCCL
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = ctx.timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
#endif
  }
  auto options = c10d::ProcessGroupGloo::Options::create(ctx.timeout);
  options->devices.push_back(gloo_device(ctx.env));
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
}

std::string resolve_backend(const DistOptions& options) {
  return options.backend == "auto" ? (options.device == "cuda" ? "nccl" : "gloo") : options.backend;
}

}  // namespace

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

EnvLookup env_from_map(std::map<std::string, std::string> values) {
  return [values = std::move(values)](const std::string& name) -> std::optional<std::string> {
    const auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

int default_master_port(const std::string& job_id) { return 29500 + static_cast<int>(fnv1a(job_id) % 3000); }

LaunchEnv detect_launch_env(const EnvLookup& env) {
  LaunchEnv out;
  if (env("OMPI_COMM_WORLD_RANK")) {
    read_ranks(env, {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                     "OMPI_COMM_WORLD_LOCAL_SIZE"}, out);
    out.job_id = first_set(env, {"OMPI_MCA_ess_base_jobid", "OMPI_MCA_orte_ess_jobid", "PMIX_NAMESPACE"});
  } else if (env("PMI_RANK")) {
    read_ranks(env, {"mpich", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"}, out);
    out.job_id = first_set(env, {"PMI_JOBID", "PMIX_NAMESPACE", "PMI_KVSNAME"});
  } else if (env("RANK") || env("WORLD_SIZE")) {
    check(env("RANK") && env("WORLD_SIZE"), "RANK and WORLD_SIZE must be set together (torchrun style)");
    read_ranks(env, {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"}, out);
    out.job_id = first_set(env, {"TORCHELASTIC_RUN_ID"});
  } else if (env("SLURM_PROCID")) {
    const bool has_ntasks = env("SLURM_NTASKS").has_value();
    read_ranks(env, {"slurm", "SLURM_PROCID", has_ntasks ? "SLURM_NTASKS" : "SLURM_NPROCS", "SLURM_LOCALID", ""}, out);
    // Tasks on this node: SLURM_NTASKS_PER_NODE when given, else this node's SLURM_TASKS_PER_NODE entry.
    if (const auto per_node = read_int(env, "SLURM_NTASKS_PER_NODE")) {
      out.local_size = static_cast<int>(*per_node);
      check(*per_node >= 1 && *per_node <= out.world_size, "SLURM_NTASKS_PER_NODE (", *per_node, ") must be in [1, ",
            out.world_size, "]");
    } else if (const auto text = env("SLURM_TASKS_PER_NODE")) {
      const auto tasks = expand_slurm_tasks_per_node(*text);
      const int64_t node = read_int(env, "SLURM_NODEID").value_or(0);
      check(node >= 0 && node < static_cast<int64_t>(tasks.size()), "SLURM_NODEID (", node, ") has no entry in SLURM_TASKS_PER_NODE (\"",
            *text, "\")");
      out.local_size = static_cast<int>(tasks[node]);
    }
    check(out.local_rank < out.local_size, "SLURM_LOCALID (", out.local_rank, ") must be < the tasks on this node (",
          out.local_size, ")");
    const auto job = first_set(env, {"SLURM_JOB_ID", "SLURM_JOBID"});
    out.job_id = job.empty() ? "" : job + "." + first_set(env, {"SLURM_STEP_ID", "SLURM_STEPID"});
  }
  if (const auto addr = env("MASTER_ADDR"); addr && !addr->empty()) {
    out.master_addr = *addr;
    out.master_addr_set = true;
  }
  if (const auto port = read_int(env, "MASTER_PORT")) {
    check(*port >= 1 && *port <= 65535, "MASTER_PORT (", *port, ") must be in [1, 65535]");
    out.master_port = static_cast<int>(*port);
  } else {
    out.master_port = default_master_port(out.job_id);
  }
  return out;
}

void DistOptions::validate(const std::string& prefix) const {
  check(backend == "auto" || backend == "gloo" || backend == "nccl", prefix, ".backend (\"", backend,
        "\") must be one of auto, gloo, nccl");
  check(device == "cpu" || device == "cuda", prefix, ".device (\"", device, "\") must be cpu or cuda");
  check(timeout_s > 0, prefix, ".timeout_s (", timeout_s, ") must be > 0");
  check(!(backend == "nccl" && device == "cpu"), prefix, ".backend \"nccl\" needs ", prefix, ".device \"cuda\"");
}

DistributedContext init_distributed(const LaunchEnv& env, const DistOptions& options) {
  options.validate();
  DistributedContext ctx;
  ctx.env = env;
  ctx.timeout = std::chrono::milliseconds(static_cast<int64_t>(options.timeout_s * 1000.0));
  check(!env.multi_host() || env.master_addr_set, "MASTER_ADDR must be set: the ", env.world_size,
        " ranks span several hosts (", env.local_size, " on this one), so 127.0.0.1 cannot be rank 0's address");
  if (options.configure_threads) {
    configure_tensor_allocator();
    configure_intra_op_threads(env.local_size);
  }
  ctx.use_backend(resolve_backend(options));
  if (env.world_size == 1) {
    ctx.store = c10::make_intrusive<c10d::HashStore>();
  } else {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(env.master_port);
    store_options.isServer = env.rank == 0;
    store_options.numWorkers = static_cast<size_t>(env.world_size);
    store_options.waitWorkers = true;
    store_options.timeout = ctx.timeout;
    try {
      ctx.store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, store_options);
    } catch (const std::exception& e) {
      fail("rendezvous at ", env.master_addr, ":", env.master_port, " failed for rank ", env.rank, " of ",
           env.world_size, " (", e.what(), "); set MASTER_ADDR / MASTER_PORT to rank 0's host and a free port");
    }
  }
  std::vector<int> all(static_cast<size_t>(env.world_size));
  for (int r = 0; r < env.world_size; ++r) all[r] = r;
  ctx.world = ctx.make_group_of(all, "world", "gloo");
  log::info("rank ", env.rank, " of ", env.world_size, " (", env.launcher, ", local ", env.local_rank, " of ",
            env.local_size, "): ", ctx.backend, " via ", env.master_addr, ":", env.master_port);
  return ctx;
}

void DistributedContext::use_backend(const std::string& name) {
  check(name == "gloo" || name == "nccl", "process-group backend \"", name, "\": expected gloo or nccl");
#if K2F_WITH_NCCL
  if (name == "nccl") {
    const int visible = c10::cuda::device_count();
    check(visible > 0, "parallel.backend \"nccl\": no CUDA device is visible to rank ", env.rank);
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(env.local_rank % visible));
  }
#else
  check(name != "nccl", "parallel.backend \"nccl\" needs k2forge built against a CUDA LibTorch (K2F_WITH_NCCL); "
        "this build has Gloo only");
#endif
  backend = name;
}

Group DistributedContext::new_group(const std::vector<int>& ranks, const std::string& tag) {
  return make_group_of(ranks, tag, backend);
}

Group DistributedContext::make_group_of(const std::vector<int>& ranks, const std::string& tag,
                                        const std::string& group_backend) {
  check(!ranks.empty(), "process group \"", tag, "\" has no ranks");
  std::string key = "group/" + tag + "/";
  int my_index = -1;
  for (size_t i = 0; i < ranks.size(); ++i) {
    check(ranks[i] >= 0 && ranks[i] < env.world_size && (i == 0 || ranks[i] > ranks[i - 1]), "process group \"", tag,
          "\": ranks must be ascending and in [0, ", env.world_size, "), got ", ranks[i], " at position ", i);
    if (ranks[i] == env.rank) my_index = static_cast<int>(i);
    key += (i ? "," : "") + std::to_string(ranks[i]);
  }
  if (my_index < 0) return Group();
  // A group over the same ranks and tag created again gets fresh keys (stale addresses otherwise).
  key += "#" + std::to_string(groups_created_[key]++);
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>(key, store);
  return make_group(*this, group_backend, prefixed, my_index, static_cast<int>(ranks.size()));
}

void DistributedContext::check_on_all_ranks(const std::function<void()>& body) {
  std::string message;
  bool failed = false;
  try {
    body();
  } catch (const std::exception& e) {
    message = e.what();
    failed = true;
  }
  const std::string key = "k2f/agree/" + std::to_string(agreement_round_++) + "/";
  if (env.world_size == 1) {
    if (failed) throw AgreedFailure(message);
    return;
  }
  // Failed ranks publish their message first, so the others can read it after the all-reduce.
  if (failed) store->set(key + std::to_string(env.rank), std::vector<uint8_t>(message.begin(), message.end()));
  auto failed_W = torch::zeros({env.world_size}, torch::kInt32);
  failed_W[env.rank] = failed ? 1 : 0;
  all_reduce_sum(world, failed_W);
  for (int r = 0; r < env.world_size; ++r) {
    if (failed_W[r].item<int>() == 0) continue;
    const auto bytes = r == env.rank ? std::vector<uint8_t>(message.begin(), message.end()) : store->get(key + std::to_string(r));
    // Rank 0 hosts the store: nobody leaves (and takes the store down) before everyone has read.
    auto read_W = torch::zeros({1}, torch::kInt32);
    all_reduce_sum(world, read_W);
    throw AgreedFailure("rank " + std::to_string(r) + ": " + std::string(bytes.begin(), bytes.end()));
  }
}

std::string DistributedContext::agree_on_failure(const std::string& local_message, std::chrono::milliseconds wait,
                                                 const std::function<void()>& release_groups) {
  std::string message = "rank " + std::to_string(env.rank) + ": " + local_message;
  const auto release = [&] {
    if (release_groups) release_groups();
    world.reset();  // the last reference once the trainer is gone: closes this rank's connections
  };
  if (env.world_size == 1 || !store) {
    release();
    return local_message;
  }
  const std::string arrived_key = "k2f/failure/arrived", message_key = "k2f/failure/message";
  try {
    store->setTimeout(wait);
    if (store->add(arrived_key, 1) == 1) {
      store->set(message_key, std::vector<uint8_t>(message.begin(), message.end()));
    } else {
      const auto first = store->get(message_key);
      message.assign(first.begin(), first.end());
    }
    release();
    const auto deadline = std::chrono::steady_clock::now() + wait;
    while (store->add(arrived_key, 0) < env.world_size && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  } catch (const std::exception&) {
    // The store went away with its host (rank 0 died): this rank's own message is all there is.
    release();
  }
  return message;
}

}  // namespace k2f::parallel
