// Entry point of `k2forge`: dispatches to a subcommand, prints any error once (no stack trace)
// and returns non-zero. Library code below never exits.
#include <c10/util/Exception.h>

#include <csignal>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>

#include "base/error.h"
#include "base/threads.h"
#include "train/cli/command.h"

namespace {

struct Command {
  std::function<int(const k2f::cli::Args&)> run;
  std::string summary;
  std::string planned_in;  // set for subcommands whose issue has not landed
};

const std::map<std::string, Command>& commands() {
  static const std::map<std::string, Command> table = {
      {"init", {k2f::cli::run_init, "build a model from a recipe's [model] and seed, export it as an HF directory", ""}},
      {"inspect", {k2f::cli::run_inspect, "total/active parameters and memory of a config or model", ""}},
      {"score", {k2f::cli::run_score, "per-token log-probabilities of token rows under a model", ""}},
      {"export", {k2f::cli::run_export, "write a checkpoint or HF directory as an HF directory (bf16, fp32 or INT4 pack-quantized)", ""}},
      {"bench", {k2f::cli::run_bench, "benchmarks printing JSON (model, train, generate, tokenizer, data, quant)", ""}},
      {"train", {k2f::cli::run_train, "pretraining and fine-tuning from a recipe (resumes by default)", ""}},
      {"rl", {k2f::cli::run_rl, "RL fine-tuning of a thinking model with tool calls (held-out accuracy before/after)", ""}},
      {"generate", {k2f::cli::run_generate, "sampling with the MLA latent KV cache (prompt text or token ids)", ""}},
      {"data", {k2f::cli::run_data, "tokenised HDF5 token stores: build, inspect", ""}},
      {"tokenizer", {k2f::cli::run_tokenizer, "tiktoken-format BPE: train, encode, decode", ""}},
      {"plan", {k2f::cli::run_plan, "memory per GPU, FLOPs, communication and step time of a recipe on its [cluster]", ""}},
  };
  return table;
}

void print_usage() {
  std::cout << "k2forge: train, fine-tune and export Kimi-K2-architecture models\n\n"
               "usage: k2forge <command> [options]   (k2forge <command> --help for its options)\n\ncommands:\n";
  for (const auto& [name, command] : commands()) {
    std::cout << "  " << name << std::string(12 - name.size(), ' ') << command.summary
              << (command.run ? "" : "  [planned: " + command.planned_in + "]") << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  // A file-size limit (ulimit -f) or a full quota must surface as a failed write with a message,
  // not as SIGXFSZ killing the process mid-checkpoint.
  std::signal(SIGXFSZ, SIG_IGN);
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  const std::string name = argv[1];
  const auto it = commands().find(name);
  if (it == commands().end()) {
    std::cerr << "k2forge: unknown command \"" << name << "\" (k2forge --help lists them)\n";
    return 2;
  }
  if (!it->second.run) {
    std::cerr << "k2forge " << name << ": this build does not include it yet; it is planned with "
              << it->second.planned_in << "\n";
    return 2;
  }
  const k2f::cli::Args args(argv + 1, argv + argc);
  try {
    k2f::configure_tensor_allocator();
    k2f::configure_intra_op_threads();
    return it->second.run(args);
  } catch (const k2f::Error& e) {
    std::cerr << "k2forge " << name << ": error: " << e.what() << "\n";
  } catch (const cxxopts::exceptions::exception& e) {
    std::cerr << "k2forge " << name << ": error: " << e.what() << " (see k2forge " << name << " --help)\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "k2forge " << name << ": error: " << e.what_without_backtrace() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "k2forge " << name << ": error: " << e.what() << "\n";
  }
  return 1;
}
