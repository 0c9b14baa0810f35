#include "train/rl/rl_options.h"

#include "base/error.h"
#include "data/key_chain_task.h"

namespace k2f::train::rl {

std::vector<KeySpec> rl_recipe_keys() {
  return {
      {"rl.environment", KeyType::String, "arithmetic",
       "task: arithmetic (the embedded verifiable problems), key_chain (the embedded horizon task: follow "
       "rl.chain_length keys through the lookup tool) or jsonl (rl.prompts with reference answers)"},
      {"rl.chain_length", KeyType::Int, 8,
       "key_chain: sequential lookups each task needs (1 to 300); the held-out tasks have this length"},
      {"rl.chain_min_length", KeyType::Int, 0,
       "key_chain: training tasks have lengths drawn from [chain_min_length, chain_length] (a curriculum over "
       "the horizon); 0: all of rl.chain_length"},
      {"rl.prompts", KeyType::String, "", "jsonl: training prompts, one {\"messages\", \"tools\", \"answer\"} per line"},
      {"rl.eval_prompts", KeyType::String, "", "jsonl: held-out prompts in the same form (empty: no evaluation)"},
      {"rl.tokenizer", KeyType::String, "assets/tokenizer", "tokenizer directory (chat template, tool calls)"},
      {"rl.task_seed", KeyType::Int, 0, "seed of the training problem stream"},
      {"rl.prompts_per_step", KeyType::Int, 8, "prompts per RL step"},
      {"rl.samples_per_prompt", KeyType::Int, 4, "samples per prompt (the group for baselines and advantages)"},
      {"rl.rollout_batch_prompts", KeyType::Int, 0,
       "prompt groups per generation batch (0: all of a rank's prompts at once); fixes the batches' shapes, so a "
       "data-parallel run samples exactly what one process does"},
      {"rl.rollout_batching", KeyType::String, "continuous",
       "continuous (each episode keeps its slot's latent cache across tool rounds and hands the slot to the next "
       "episode when it ends) or rounds (every round of a batch waits for its longest turn and prefills again)"},
      {"rl.routing_replay", KeyType::Bool, true,
       "the trainer's forward routes each token to the experts the sampler chose (MoE models), so a router "
       "near-tie flipped by rounding cannot separate its log-probs from the sampler's"},
      {"rl.updates_per_batch", KeyType::Int, 1, "optimizer steps on each batch of rollouts"},
      {"rl.micro_batch_size", KeyType::Int, 16, "episodes per forward/backward"},
      {"rl.objective", KeyType::String, "pmd_mean", "pmd_mean (K2) or grpo (clipped surrogate)"},
      {"rl.tau", KeyType::Float, 0.05, "PMD-mean tau (weight of the log-ratio)"},
      {"rl.clip_epsilon", KeyType::Float, 0.2, "GRPO ratio clip"},
      {"rl.kl_coef", KeyType::Float, 0.0, "weight of the k3 KL to the initial (reference) policy"},
      {"rl.log_kl", KeyType::Bool, true, "report the KL to the reference even when rl.kl_coef is 0"},
      {"rl.ptx_coef", KeyType::Float, 0.0, "weight of the PTX (supervised) loss on rl.ptx_data"},
      {"rl.ptx_data", KeyType::StringList, Json::array(), "HDF5 token stores for the PTX loss"},
      {"rl.ptx_batch_size", KeyType::Int, 4, "PTX sequences per step"},
      {"rl.ptx_seq_len", KeyType::Int, 256, "PTX sequence length"},
      {"rl.temperature_start", KeyType::Float, 1.0, "sampling temperature at the first step"},
      {"rl.temperature_end", KeyType::Float, 1.0, "sampling temperature at the last step (linear schedule)"},
      {"rl.top_p", KeyType::Float, 1.0, "nucleus mass of rollouts (1: off)"},
      {"rl.top_k", KeyType::Int, 0, "top-k of rollouts (0: off)"},
      {"rl.max_response_tokens", KeyType::Int, 96, "token budget of an episode (sampled tokens, all turns)"},
      {"rl.max_tool_calls", KeyType::Int, 2, "tool calls per episode"},
      {"rl.tool_timeout_s", KeyType::Float, 2.0, "wall time of one tool call"},
      {"rl.tool_max_output_chars", KeyType::Int, 256, "tool output longer than this is cut and flagged"},
      {"rl.tool_max_argument_chars", KeyType::Int, 1024, "longer tool arguments are refused"},
      {"rl.adapter", KeyType::String, "",
       "an HF PEFT LoRA adapter directory on train.init_from: RL trains that adapter, the base stays frozen "
       "(\"\": lora.rank > 0 trains fresh adapters, 0 every weight)"},
      {"rl.tools", KeyType::String, "",
       "JSON file of the user's tools: OpenAI-style declarations, each with the \"command\" that serves it "
       "(one JSON call per line in, one answer per line out; docs/thinking-and-rl.md)"},
      {"rl.tool_cpu_seconds", KeyType::Float, 10.0, "CPU seconds a tool process may use"},
      {"rl.tool_memory_mb", KeyType::Int, 2048, "address space of a tool process (MB)"},
      {"rl.tool_file_size_mb", KeyType::Int, 64, "largest file a tool process may write (MB)"},
      {"rl.tool_open_files", KeyType::Int, 64, "open files of a tool process"},
      {"rl.tool_processes", KeyType::Int, 64, "processes of the sandbox user (RLIMIT_NPROC)"},
      {"rl.tool_network", KeyType::Bool, false, "let tool programs use the network"},
      {"rl.tool_user", KeyType::String, "nobody", "user tool programs run as when k2forge runs as root (\"\": root)"},
      {"rl.tool_workdir", KeyType::String, "", "where episodes' working directories are made (\"\": the temp directory)"},
      {"rl.reward_correct", KeyType::Float, 1.0, "reward of a correct answer"},
      {"rl.reward_format", KeyType::Float, 0.1, "reward added for a well-formed episode"},
      {"rl.length_reward", KeyType::Float, 0.0, "weight of the K1.5 length reward (0: off)"},
      {"rl.truncation_penalty", KeyType::Float, -0.5, "reward added when an episode hits the budget"},
      {"rl.reward_progress", KeyType::Float, 0.0,
       "weight of the partial credit for the steps done right in order (key_chain: correct lookups / "
       "chain length; 0: off)"},
      {"rl.eval_problems", KeyType::Int, 128, "held-out problems evaluated before and after RL"},
      {"rl.eval_batch_size", KeyType::Int, 64, "episodes generated together during evaluation"},
      {"rl.eval_temperature", KeyType::Float, 1.0, "sampling temperature of the evaluation (0: greedy)"},
      {"rl.eval_seed", KeyType::Int, 7, "sampling seed of the evaluation"},
  };
}

double RlOptions::temperature(int64_t step) const {
  if (train.steps <= 1) return temperature_start;
  const double f = static_cast<double>(step) / static_cast<double>(train.steps - 1);
  return temperature_start + (temperature_end - temperature_start) * f;
}

void RlOptions::validate() const {
  check(!train.init_from.empty(), "train.init_from is empty: RL starts from a model (an SFT checkpoint or HF directory)");
  check(!train.lora_enabled() || adapter.empty(), "rl.adapter (\"", adapter, "\") and lora.rank (", train.lora.rank,
        ") are both set: the adapter's adapter_config.json decides its rank and modules (set lora.rank = 0), or leave "
        "rl.adapter empty to train fresh adapters");
  if (train.lora_enabled()) train.lora.validate();
  if (trains_adapters()) {
    check(train.lora.dropout == 0, "lora.dropout (", train.lora.dropout, ") with RL: rollouts and updates must ",
          "compute the same policy; set lora.dropout = 0");
    check(!train.qat, "quant.qat with LoRA RL: the base is frozen, so QAT has nothing to train (set quant.qat = false)");
  }
  check(train.steps > 0, "train.steps (", train.steps, ") must be positive");
  check(train.grad_clip >= 0, "train.grad_clip (", train.grad_clip, ") must be >= 0");
  check(train.lr > 0, "optim.lr (", train.lr, ") must be positive");
  train.optimizer.validate();
  train.schedule.validate(train.lr, train.steps);
  check(train.checkpoint_interval >= 0, "checkpoint.interval (", train.checkpoint_interval, ") must be >= 0");
  check(train.checkpoint_keep >= 1, "checkpoint.keep (", train.checkpoint_keep, ") must be >= 1");
  check(environment == "arithmetic" || environment == "key_chain" || environment == "jsonl", "rl.environment (\"",
        environment, "\") must be \"arithmetic\", \"key_chain\" or \"jsonl\"");
  check(chain_length >= 1 && chain_length <= data::kMaxChainLength, "rl.chain_length (", chain_length,
        ") must be in [1, ", data::kMaxChainLength, "]");
  check(chain_min_length >= 0 && chain_min_length <= chain_length, "rl.chain_min_length (", chain_min_length,
        ") must be in [0, rl.chain_length ", chain_length, "] (0: every training task of rl.chain_length)");
  check(environment != "jsonl" || !prompts.empty(), "rl.environment \"jsonl\" needs rl.prompts (a JSONL file of ",
        "{\"messages\", \"answer\"} lines)");
  check(environment == "jsonl" || (prompts.empty() && eval_prompts.empty()), "rl.prompts and rl.eval_prompts are ",
        "read only with rl.environment = \"jsonl\" (it is \"", environment, "\")");
  check(prompts_per_step > 0, "rl.prompts_per_step (", prompts_per_step, ") must be positive");
  check(rollout_batch_prompts >= 0, "rl.rollout_batch_prompts (", rollout_batch_prompts, ") must be >= 0");
  check(samples_per_prompt > 1, "rl.samples_per_prompt (", samples_per_prompt,
        ") must be at least 2 (baselines and advantages compare samples of one prompt)");
  check(updates_per_batch > 0, "rl.updates_per_batch (", updates_per_batch, ") must be positive");
  check(micro_batch_size > 0, "rl.micro_batch_size (", micro_batch_size, ") must be positive");
  check(tau > 0, "rl.tau (", tau, ") must be > 0");
  check(clip_epsilon > 0 && clip_epsilon < 1, "rl.clip_epsilon (", clip_epsilon, ") must be in (0, 1)");
  check(kl_coef >= 0, "rl.kl_coef (", kl_coef, ") must be >= 0");
  check(ptx_coef >= 0, "rl.ptx_coef (", ptx_coef, ") must be >= 0");
  check(ptx_coef == 0 || !ptx_data.empty(), "rl.ptx_coef (", ptx_coef, ") > 0 needs rl.ptx_data (token stores)");
  check(ptx_batch_size > 0 && ptx_seq_len > 0, "rl.ptx_batch_size (", ptx_batch_size, ") and rl.ptx_seq_len (",
        ptx_seq_len, ") must be positive");
  check(temperature_start > 0 && temperature_end > 0, "rl.temperature_start (", temperature_start,
        ") and rl.temperature_end (", temperature_end, ") must be > 0");
  check(eval_temperature >= 0, "rl.eval_temperature (", eval_temperature, ") must be >= 0");
  check(eval_problems >= 0, "rl.eval_problems (", eval_problems, ") must be >= 0");
  check(eval_batch_size > 0, "rl.eval_batch_size (", eval_batch_size, ") must be positive");
  RolloutOptions rollout;
  rollout.sampling.top_p = top_p;
  rollout.sampling.top_k = top_k;
  rollout.max_response_tokens = max_response_tokens;
  rollout.max_tool_calls = max_tool_calls;
  rollout.validate("rl");
  tool_limits.validate("rl");
  rewards.validate("rl");
}

RlOptions RlOptions::from_recipe(const Recipe& r) {
  RlOptions o;
  o.train = TrainOptions::from_recipe(r);
  o.tokenizer = r.get_string("rl.tokenizer");
  o.environment = r.get_string("rl.environment");
  o.chain_length = r.get_int("rl.chain_length");
  o.chain_min_length = r.get_int("rl.chain_min_length");
  o.prompts = r.get_string("rl.prompts");
  o.eval_prompts = r.get_string("rl.eval_prompts");
  o.task_seed = static_cast<uint64_t>(r.get_int("rl.task_seed"));
  o.prompts_per_step = r.get_int("rl.prompts_per_step");
  o.samples_per_prompt = r.get_int("rl.samples_per_prompt");
  o.rollout_batch_prompts = r.get_int("rl.rollout_batch_prompts");
  o.rollout_batching = parse_rollout_batching(r.get_string("rl.rollout_batching"), "rl.rollout_batching");
  o.routing_replay = r.get_bool("rl.routing_replay");
  o.updates_per_batch = r.get_int("rl.updates_per_batch");
  o.micro_batch_size = r.get_int("rl.micro_batch_size");
  o.objective = parse_objective(r.get_string("rl.objective"), "rl.objective");
  o.tau = r.get_float("rl.tau");
  o.clip_epsilon = r.get_float("rl.clip_epsilon");
  o.kl_coef = r.get_float("rl.kl_coef");
  o.log_kl = r.get_bool("rl.log_kl");
  o.ptx_coef = r.get_float("rl.ptx_coef");
  o.ptx_data = r.get_strings("rl.ptx_data");
  o.ptx_batch_size = r.get_int("rl.ptx_batch_size");
  o.ptx_seq_len = r.get_int("rl.ptx_seq_len");
  o.temperature_start = r.get_float("rl.temperature_start");
  o.temperature_end = r.get_float("rl.temperature_end");
  o.top_p = r.get_float("rl.top_p");
  o.top_k = r.get_int("rl.top_k");
  o.max_response_tokens = r.get_int("rl.max_response_tokens");
  o.max_tool_calls = r.get_int("rl.max_tool_calls");
  o.tool_limits.timeout_s = r.get_float("rl.tool_timeout_s");
  o.tool_limits.max_output_chars = r.get_int("rl.tool_max_output_chars");
  o.tool_limits.max_argument_chars = r.get_int("rl.tool_max_argument_chars");
  o.tools = r.get_string("rl.tools");
  o.adapter = r.get_string("rl.adapter");
  if (!o.adapter.empty()) o.train.optimizer.name = o.train.lora_optimizer == "muon" ? "muonclip" : "adamw";
  o.tool_limits.sandbox.cpu_seconds = r.get_float("rl.tool_cpu_seconds");
  o.tool_limits.sandbox.memory_mb = r.get_int("rl.tool_memory_mb");
  o.tool_limits.sandbox.file_size_mb = r.get_int("rl.tool_file_size_mb");
  o.tool_limits.sandbox.open_files = r.get_int("rl.tool_open_files");
  o.tool_limits.sandbox.processes = r.get_int("rl.tool_processes");
  o.tool_limits.sandbox.network = r.get_bool("rl.tool_network");
  o.tool_limits.sandbox.user = r.get_string("rl.tool_user");
  o.tool_limits.work_root = r.get_string("rl.tool_workdir");
  o.rewards.correct = r.get_float("rl.reward_correct");
  o.rewards.format = r.get_float("rl.reward_format");
  o.rewards.length = r.get_float("rl.length_reward");
  o.rewards.truncation_penalty = r.get_float("rl.truncation_penalty");
  o.rewards.progress = r.get_float("rl.reward_progress");
  o.eval_problems = r.get_int("rl.eval_problems");
  o.eval_batch_size = r.get_int("rl.eval_batch_size");
  o.eval_temperature = r.get_float("rl.eval_temperature");
  o.eval_seed = static_cast<uint64_t>(r.get_int("rl.eval_seed"));
  o.recipe_toml = r.to_toml();
  return o;
}

}  // namespace k2f::train::rl
