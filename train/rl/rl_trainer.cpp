#include "train/rl/rl_trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

#include <torch/nn/utils/clip_grad.h>

#include "base/error.h"
#include "base/log.h"
#include "base/stopwatch.h"
#include "model/routing_replay.h"
#include "train/checkpoint.h"
#include "train/losses.h"
#include "train/metrics.h"
#include "train/model_loading.h"
#include "train/optim/qk_clip.h"
#include "train/schedule.h"
#include "train/tensorboard.h"

namespace k2f::train::rl {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

model::KimiForCausalLM load_policy(const std::string& dir, const TrainOptions& train, bool frozen_base) {
  check(fs::exists(dir), "train.init_from (\"", dir, "\"): no such directory");
  const std::string resolved = resolve_model_dir(dir);
  LoadOptions load;
  load.keep_bf16 = frozen_base && train.dtype == torch::kBFloat16;  // a frozen base stays as stored
  auto lm = load_model(resolved, load);
  lm->compute_dtype = train.dtype;
  model::set_router_fp64(lm, train.router_fp64);
  return lm;
}

// A LoRA checkpoint's base is frozen and its adapters are not the model's parameters: RL would
// train nothing of it (evaluating it is fine). Its adapters go on as a PEFT directory on their base.
void check_trainable_start(const std::string& dir) {
  const std::string resolved = resolve_model_dir(dir);
  if (!is_training_checkpoint(resolved)) return;
  const std::string meta_path = (fs::path(resolved) / "meta.json").string();
  check(!lora_record_from_meta(read_json_file(meta_path), meta_path).has_value(), "train.init_from (\"", resolved,
        "\") is a LoRA checkpoint: export its adapters (k2forge export --format peft) and pass them as --adapter "
        "with their base as train.init_from, or export it merged and start from that");
}

// The QAT settings a starting checkpoint was trained with (load_model already applied them).
std::optional<quant::QatOptions> qat_of_checkpoint(const std::string& dir) {
  const std::string resolved = resolve_model_dir(dir);
  if (!is_training_checkpoint(resolved)) return std::nullopt;
  const std::string meta_path = (fs::path(resolved) / "meta.json").string();
  return qat_options_from_meta(read_json_file(meta_path), meta_path);
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

}  // namespace

Json RlStepMetrics::to_json() const {
  Json json = {{"step", step},
               {"loss", loss},
               {"ptx_loss", ptx_loss},
               {"lr", lr},
               {"grad_norm", grad_norm},
               {"temperature", temperature},
               {"reward_mean", reward_mean},
               {"reward_std", reward_std},
               {"accuracy", accuracy},
               {"format_rate", format_rate},
               {"response_length", response_length},
               {"tool_calls_per_episode", tool_calls_per_episode},
               {"progress", progress},
               {"truncation_rate", truncation_rate},
               {"kl", kl},
               {"logprob_mismatch", logprob_mismatch},
               {"logprob_mismatch_mean", logprob_mismatch_mean},
               {"logprob_mismatch_share_over_1e-5", logprob_mismatch_share_over_1e5},
               {"tool_calls", tools.calls},
               {"tool_calls_max", tool_calls_max},
               {"tool_seconds", tools.seconds},
               {"rollout_tokens_per_s", rollout_tokens_per_s},
               {"trained_episodes", trained_episodes},
               {"rollout_seconds", rollout_seconds},
               {"train_seconds", train_seconds},
               {"seconds", seconds}};
  for (const auto& [name, n] : tools.events) json["tool_" + name] = n;
  return json;
}

// The judged facts of every episode of a step that its metrics need, from every rank.
struct RlTrainer::StepOutcomes {
  struct Facts {
    double correct = 0, format_ok = 0, truncated = 0, response_tokens = 0, tool_calls = 0, progress = 0;
  };
  std::vector<Facts> episodes;  // in the step's episode order
  ToolStats tools;              // merged over every episode
};

RlTrainer::StepOutcomes RlTrainer::gather_outcomes(const std::vector<Episode>& episodes,
                                                   const std::vector<EpisodeOutcome>& outcomes, int64_t first,
                                                   int64_t total) const {
  constexpr int64_t kFacts = 6;
  std::vector<double> slots(static_cast<size_t>(total * kFacts), 0.0);  // this rank fills its episodes' slots
  ToolStats mine;
  for (size_t i = 0; i < episodes.size(); ++i) {
    double* facts = slots.data() + (first + static_cast<int64_t>(i)) * kFacts;
    facts[0] = outcomes[i].correct;
    facts[1] = outcomes[i].format_ok;
    facts[2] = outcomes[i].truncated;
    facts[3] = static_cast<double>(episodes[i].response_tokens);
    facts[4] = static_cast<double>(episodes[i].num_tool_calls);
    facts[5] = outcomes[i].progress;
    mine.merge(episodes[i].tool_stats);
  }
  slots = parallel_->sum_over_dp(slots);
  StepOutcomes all;
  for (int64_t e = 0; e < total; ++e) {
    const double* f = slots.data() + e * kFacts;
    all.episodes.push_back({f[0], f[1], f[2], f[3], f[4], f[5]});
  }
  for (const auto& text : parallel_->gather_over_dp(Json{{"calls", mine.calls}, {"seconds", mine.seconds}, {"events", mine.events}}.dump())) {
    const auto stats = Json::parse(text);
    ToolStats rank_stats;
    rank_stats.calls = stats.at("calls").get<int64_t>();
    rank_stats.seconds = stats.at("seconds").get<double>();
    rank_stats.events = stats.at("events").get<std::map<std::string, int64_t>>();
    all.tools.merge(rank_stats);
  }
  return all;
}

// One step's episodes as padded tensors. Legend: N episodes, L tokens, T = L-1 target positions.
struct RlTrainer::Batch {
  torch::Tensor tokens_NL;          // int64, right-padded with 0
  torch::Tensor mask_NT;            // fp32: 1 where target t+1 was sampled by the model
  torch::Tensor sampler_logp_NT;    // fp32: the sampler's log-probs at those targets
  torch::Tensor rewards_N, baselines_N, advantages_N;  // fp64
  // Routing replay: the experts the sampler routed each token to, kExpertIdDtype [N, L, M, K], -1
  // for padding and tokens it never computed (they route freely). Undefined: no replay.
  torch::Tensor experts_NLMK;
  int64_t total_episodes = 0;       // the loss is a mean over all of the step's episodes
};

RlTrainer::RlTrainer(RlOptions options, RlRunOptions run_options, std::shared_ptr<parallel::DistributedContext> context)
    : options_(std::move(options)), run_options_(run_options) {
  const int64_t W = context ? context->world_size() : 1;
  const auto validate = [&] {
    options_.validate();
    check(options_.prompts_per_step >= W, "rl.prompts_per_step (", options_.prompts_per_step, ") must be at least the ",
          "number of ranks (", W, "): each rank rolls out whole prompt groups");
    check(options_.ptx_coef == 0 || options_.ptx_batch_size % W == 0, "rl.ptx_batch_size (", options_.ptx_batch_size,
          ") must be a multiple of the number of ranks (", W, ")");
  };
  if (context) {
    context->check_on_all_ranks(validate);
  } else {
    validate();
  }
  parallel::ParallelLayout layout;
  layout.dp = W;
  parallel_ = std::make_unique<ParallelRuntime>(std::move(context), layout);
  parallel_->create_groups("gloo");  // rollouts and updates run on the CPU
  parallel_->on_all_ranks([this] { set_up(); });
  if (parallel_->is_main()) {
    fs::create_directories(options_.train.run_dir);
    write_text_file_atomic((fs::path(options_.train.run_dir) / "recipe.resolved.toml").string(), options_.recipe_toml);
  }
}

void RlTrainer::set_up() {
  tokenizer_ = std::make_unique<data::Tokenizer>(data::Tokenizer::load(options_.tokenizer));
  chat_ = std::make_unique<data::ChatTemplate>(*tokenizer_);
  tools_ = std::make_unique<ToolRunner>(options_.tool_limits);
  tools_->add(std::make_shared<CalculatorTool>());
  tools_->add(std::make_shared<LookupTool>());
  if (!options_.tools.empty()) {
    for (auto& tool : read_tool_declarations(options_.tools)) tools_->add_program(std::move(tool));
    const std::string sandbox = tools_->check_programs_start();  // a program that cannot start fails here
    if (parallel_->is_main()) log::info("rl: ", tools_->programs().size(), " tool program(s) from ", options_.tools,
                                        "; sandbox: ", sandbox);
  }
  engine_ = std::make_unique<RolloutEngine>(*tokenizer_, *chat_, *tools_);
  env_ = make_environment(options_, *chat_, tools_->programs());

  torch::manual_seed(options_.train.seed);
  const bool lora = options_.trains_adapters();
  if (!run_options_.evaluate_only) check_trainable_start(options_.train.init_from);
  model_ = load_policy(options_.train.init_from, options_.train, lora);
  check(tokenizer_->vocab_size() <= model_->model->config.vocab_size, "rl.tokenizer has ", tokenizer_->vocab_size(),
        " tokens, more than the model's vocab_size ", model_->model->config.vocab_size);
  if (lora) adapt_policy();
  if (options_.kl_coef > 0 || options_.log_kl) {
    // Fresh adapters start at B = 0, where the policy is its base; a PEFT adapter starts as itself.
    reference_ = load_policy(options_.train.init_from, options_.train, lora);
    if (!options_.adapter.empty())
      for (auto& [name, p] : apply_peft_adapter(reference_, options_.adapter).adapters.named_parameters())
        p.set_requires_grad(false);
    reference_->eval();
    for (auto& p : reference_->parameters()) p.set_requires_grad(false);
  }
  // QAT: from the starting checkpoint (already applied by load_model) or switched on by [quant].
  // Under LoRA RL the policy samples as it trains: its frozen base as loaded (packed INT4 stays
  // packed, a QAT checkpoint keeps its fake quantisation) plus the adapters.
  qat_ = lora ? std::nullopt : qat_of_checkpoint(options_.train.init_from);
  if (!qat_ && options_.train.qat) {
    quant::apply_qat(*model_, options_.train.qat_options);
    if (reference_) quant::apply_qat(*reference_, options_.train.qat_options);
    qat_ = options_.train.qat_options;
  }
  if (qat_) log::info("rl: INT4 QAT policy; rollouts and evaluations sample from its INT4 weights (W4A16)");
  if (lora_) {
    named_parameters_ = lora_->named_parameters();
  } else {
    for (const auto& item : model_->named_parameters()) named_parameters_.emplace_back(item.key(), item.value());
  }
  optimizer_ = std::make_unique<Optimizer>(named_parameters_, options_.train.optimizer);
  if (options_.ptx_coef > 0) {
    data::LoaderOptions l;
    l.paths = options_.ptx_data;
    l.seq_len = options_.ptx_seq_len;
    l.global_batch_size = options_.ptx_batch_size;
    l.seed = options_.train.seed;
    l.dp_rank = parallel_->coord().dp_rank;
    l.dp_size = parallel_->layout().dp;
    l.mask_document_boundaries = true;
    l.prefetch_batches = 0;
    l.expected_vocab_size = model_->model->config.vocab_size;
    l.expected_tokenizer_hash = tokenizer_->hash();
    ptx_loader_ = std::make_unique<data::TokenLoader>(l);
  }
  tasks_ = env_->train_tasks(options_.train.steps * options_.prompts_per_step);
  if (const auto latest = CheckpointManager(options_.train.run_dir, options_.train.checkpoint_keep).load_latest())
    resume(*latest);
}

// LoRA RL: the policy's base frozen and adapters on it, rl.adapter's (a PEFT directory) or fresh
// ones from [lora]. The base is recorded by its files' checksums, as `k2forge train` records it.
void RlTrainer::adapt_policy() {
  const std::string base = resolve_model_dir(options_.train.init_from);
  lora_base_ = fs::absolute(base).lexically_normal().string();
  lora_base_files_ = directory_checksums(lora_base_);
  if (options_.adapter.empty()) {
    lora_options_ = options_.train.lora;
    lora_ = quant::apply_lora(*model_, lora_options_);
  } else {
    auto peft = apply_peft_adapter(model_, options_.adapter);
    lora_options_ = peft.options;
    lora_ = std::move(peft.adapters);
  }
  if (parallel_->is_main())
    log::info("rl: LoRA rank ", lora_options_.rank, " on ", lora_->adapters.size(), " linears of the frozen base ", lora_base_,
              "; only the adapters train");
}

std::vector<std::pair<std::string, torch::Tensor>> RlTrainer::checkpointed_policy_state() const {
  return lora_ ? lora_->named_parameters() : model::named_state(*model_);
}

RlTrainer::~RlTrainer() = default;

EvalReport RlTrainer::evaluate() {
  EvalOptions eval;
  eval.problems = options_.eval_problems;
  eval.batch_size = options_.eval_batch_size;
  eval.rollout.sampling.temperature = options_.eval_temperature;
  eval.rollout.max_response_tokens = options_.max_response_tokens;
  eval.rollout.max_tool_calls = options_.max_tool_calls;
  eval.rollout.seed = options_.eval_seed;
  eval.rollout.batching = options_.rollout_batching;
  eval.tokenizer = tokenizer_.get();
  eval.num_samples = 16;
  eval.shard = parallel_->coord().dp_rank;  // the ranks share the held-out batches
  eval.num_shards = parallel_->layout().dp;
  auto sampler = sampling_model();
  const auto mine = evaluate_heldout(sampler, *engine_, *env_, eval);
  if (eval.num_shards == 1) return mine;
  const Json shard = {{"report", mine.to_json()},
                      {"samples", Json::parse(mine.samples.dump(-1, ' ', false, Json::error_handler_t::replace))}};
  std::vector<EvalReport> shards;
  for (const auto& text : parallel_->gather_over_dp(shard.dump(-1, ' ', false, Json::error_handler_t::replace))) {
    const auto parsed = Json::parse(text);
    shards.push_back(EvalReport::from_json(parsed.at("report"), parsed.at("samples")));
  }
  return combine_eval_shards(shards);
}

RlStepMetrics RlTrainer::train_step(int64_t step) {
  const auto start = Clock::now();
  RlStepMetrics m;
  m.step = step + 1;
  m.temperature = options_.temperature(step);
  m.lr = learning_rate(options_.train.schedule, options_.train.lr, step, options_.train.steps);
  const int64_t P = options_.prompts_per_step, K = options_.samples_per_prompt;
  // This rank's prompts [first_prompt, end_prompt) of the step; one process takes all of them.
  const int64_t W = parallel_->world_size(), rank = parallel_->rank();
  const int64_t first_prompt = P * rank / W, end_prompt = P * (rank + 1) / W;

  // Rollouts.
  std::vector<std::vector<int64_t>> prompts;
  std::vector<const RlTask*> tasks;
  RolloutOptions rollout;
  for (int64_t p = first_prompt; p < end_prompt; ++p) {
    const RlTask& task = tasks_[static_cast<size_t>(step * P + p)];
    for (int64_t k = 0; k < K; ++k) {
      prompts.push_back(task.prompt);
      tasks.push_back(&task);
      // Each episode's own seed, from the step and its index in the step: any split samples the same.
      rollout.row_seeds.push_back((options_.train.seed * 7919ull + static_cast<uint64_t>(step)) * 65537ull +
                                  static_cast<uint64_t>(p * K + k));
    }
  }
  rollout.sampling.temperature = m.temperature;
  rollout.sampling.top_p = options_.top_p;
  rollout.sampling.top_k = options_.top_k;
  rollout.max_response_tokens = options_.max_response_tokens;
  rollout.max_tool_calls = options_.max_tool_calls;
  rollout.seed = options_.train.seed * 7919ull + static_cast<uint64_t>(step);
  rollout.record_routing = options_.routing_replay && model::num_moe_layers(*model_->model) > 0;
  model_->eval();
  // rl.rollout_batch_prompts groups at once (all of them by default), batched as rl.rollout_batching says.
  rollout.batching = options_.rollout_batching;
  rollout.slots = options_.rollout_batch_prompts * K;
  std::vector<Episode> episodes = engine_->run_model(sampling_model(), prompts, rollout);
  model_->train();
  m.rollout_seconds = seconds_since(start);

  // Rewards and metrics.
  std::vector<EpisodeOutcome> outcomes;
  for (size_t i = 0; i < episodes.size(); ++i) outcomes.push_back(env_->judge(episodes[i], *tasks[i]));
  const auto rewards = compute_rewards(outcomes, K, options_.rewards);  // per group: every group is on one rank
  const auto all = gather_outcomes(episodes, outcomes, first_prompt * K, P * K);
  std::vector<double> all_rewards(all.episodes.size(), 0.0);
  {
    std::vector<double> mine(all.episodes.size(), 0.0);
    std::copy(rewards.begin(), rewards.end(), mine.begin() + first_prompt * K);
    all_rewards = parallel_->sum_over_dp(mine);
  }
  m.reward_mean = mean(all_rewards);
  for (double r : all_rewards) m.reward_std += (r - m.reward_mean) * (r - m.reward_mean);
  m.reward_std = std::sqrt(m.reward_std / static_cast<double>(all_rewards.size()));
  for (const auto& e : all.episodes) {
    m.accuracy += e.correct;
    m.format_rate += e.format_ok;
    m.truncation_rate += e.truncated;
    m.response_length += e.response_tokens;
    m.tool_calls_per_episode += e.tool_calls;
    m.progress += e.progress;
    m.tool_calls_max = std::max(m.tool_calls_max, static_cast<int64_t>(e.tool_calls));
  }
  m.rollout_tokens_per_s = m.rollout_seconds > 0 ? m.response_length / m.rollout_seconds : 0.0;
  m.tools = all.tools;
  const double N = static_cast<double>(all.episodes.size());
  for (double* v : {&m.accuracy, &m.format_rate, &m.truncation_rate, &m.response_length, &m.tool_calls_per_episode,
                    &m.progress})
    *v /= N;

  // The batch: every token of every episode; only sampled targets count. With one update and no
  // KL term, a group whose rewards are all equal has zero gradient under both objectives (its
  // advantages are 0 and the policy is still pi_old), so it is left out of the forward pass; the
  // loss is still divided by all N episodes.
  std::vector<size_t> kept;
  const bool skip_flat_groups = options_.updates_per_batch == 1 && options_.kl_coef == 0 && options_.ptx_coef == 0;
  for (size_t g = 0; g < episodes.size(); g += static_cast<size_t>(K)) {
    bool flat = true;
    for (size_t i = g; i < g + static_cast<size_t>(K); ++i) flat = flat && rewards[i] == rewards[g];
    for (size_t i = g; i < g + static_cast<size_t>(K); ++i)
      if (!(flat && skip_flat_groups)) kept.push_back(i);
  }
  m.trained_episodes = static_cast<int64_t>(parallel_->sum_over_dp({static_cast<double>(kept.size())})[0]);
  if (m.trained_episodes == 0) {  // on every rank: no group anywhere carries a learning signal
    m.seconds = seconds_since(start);
    return m;
  }
  std::vector<double> kept_rewards;
  for (const size_t i : kept) kept_rewards.push_back(rewards[i]);
  size_t longest = 2;  // a rank whose groups are all flat trains on no rows, but takes part in the sums
  for (const size_t i : kept) longest = std::max(longest, episodes[i].tokens.size());
  const int64_t L = static_cast<int64_t>(longest);
  Batch batch;
  batch.total_episodes = P * K;  // the loss is a mean over the whole step's episodes, on every rank
  batch.tokens_NL = torch::zeros({static_cast<int64_t>(kept.size()), L}, torch::kInt64);
  batch.mask_NT = torch::zeros({static_cast<int64_t>(kept.size()), L - 1}, torch::kFloat32);
  batch.sampler_logp_NT = torch::zeros_like(batch.mask_NT);
  for (size_t i = 0; i < kept.size(); ++i) {
    const auto& e = episodes[kept[i]];
    const int64_t n = static_cast<int64_t>(e.tokens.size());
    batch.tokens_NL[static_cast<int64_t>(i)].narrow(0, 0, n).copy_(torch::tensor(e.tokens, torch::kInt64));
    std::vector<float> mask(e.sampled.begin() + 1, e.sampled.end());
    std::vector<float> logp(e.sampler_logprobs.begin() + 1, e.sampler_logprobs.end());
    batch.mask_NT[static_cast<int64_t>(i)].narrow(0, 0, n - 1).copy_(torch::tensor(mask));
    batch.sampler_logp_NT[static_cast<int64_t>(i)].narrow(0, 0, n - 1).copy_(torch::tensor(logp));
  }
  if (rollout.record_routing) {
    const int64_t M = model::num_moe_layers(*model_->model), K = model_->model->config.num_experts_per_tok;
    batch.experts_NLMK = torch::full({static_cast<int64_t>(kept.size()), L, M, K}, -1, model::kExpertIdDtype);
    for (size_t i = 0; i < kept.size(); ++i) {
      const auto& e = episodes[kept[i]];
      check(e.experts_SMK.defined() && e.experts_SMK.size(0) == static_cast<int64_t>(e.tokens.size()),
            "rl: episode without the sampler's routing for each of its ", e.tokens.size(), " tokens");
      batch.experts_NLMK[static_cast<int64_t>(i)].narrow(0, 0, e.experts_SMK.size(0)).copy_(e.experts_SMK);
    }
  }
  batch.rewards_N = torch::tensor(kept_rewards, torch::kFloat64);
  batch.baselines_N = group_mean_baselines(kept_rewards, K);  // kept groups are whole
  batch.advantages_N = group_normalised_advantages(kept_rewards, K);

  const auto train_start = Clock::now();
  m.loss = optimise(batch, m);
  m.train_seconds = seconds_since(train_start);
  m.seconds = seconds_since(start);
  return m;
}

double RlTrainer::optimise(const Batch& batch, RlStepMetrics& m) {
  const int64_t N = batch.tokens_NL.size(0), T = batch.mask_NT.size(1);
  const int64_t micro = options_.micro_batch_size;
  auto old_logp_NT = torch::zeros({N, T}, torch::kFloat32);
  torch::Tensor ref_logp_NT;
  if (reference_) {
    torch::NoGradGuard no_grad;
    ref_logp_NT = torch::zeros({N, T}, torch::kFloat32);
    for (int64_t b = 0; b < N; b += micro) {
      const int64_t n = std::min(micro, N - b);
      const auto tokens = batch.tokens_NL.narrow(0, b, n);
      ref_logp_NT.narrow(0, b, n).copy_(model::next_token_logprobs(reference_->forward(tokens), tokens).to(torch::kFloat32));
    }
  }
  double loss_sum = 0, kl_sum = 0, mismatch = 0, mismatch_sum = 0, mismatch_over = 0, sampled_tokens = 0;
  for (int64_t update = 0; update < options_.updates_per_batch; ++update) {
    model_->zero_grad();
    for (auto& [name, p] : named_parameters_)  // adapters are not the model's registered parameters
      if (p.grad().defined()) p.mutable_grad().reset();
    begin_qk_recording(model_->model);
    double loss = 0;
    for (int64_t b = 0; b < N; b += micro) {
      const int64_t n = std::min(micro, N - b);
      const auto tokens = batch.tokens_NL.narrow(0, b, n);
      const auto mask = batch.mask_NT.narrow(0, b, n);
      std::optional<model::RoutingReplay> replay;  // through the backward pass too
      if (batch.experts_NLMK.defined()) {
        const auto experts = batch.experts_NLMK.narrow(0, b, n);
        replay.emplace(*model_->model, experts.reshape({-1, experts.size(2), experts.size(3)}));
      }
      const auto logp = model::next_token_logprobs(model_->forward(tokens), tokens).to(torch::kFloat32);
      if (update == 0) {  // the weights that sampled: these are pi_old
        old_logp_NT.narrow(0, b, n).copy_(logp.detach());
        const auto diff_NT = (logp.detach() - batch.sampler_logp_NT.narrow(0, b, n)).abs().to(torch::kFloat64) * mask;
        mismatch = std::max(mismatch, diff_NT.max().item<double>());
        mismatch_sum += diff_NT.sum().item<double>();
        mismatch_over += (diff_NT > 1e-5).sum().item<double>();
        sampled_tokens += mask.sum().item<double>();
      }
      const auto old = old_logp_NT.narrow(0, b, n);
      torch::Tensor terms = options_.objective == Objective::pmd_mean
                                ? pmd_mean_terms(logp, old, mask, batch.rewards_N.narrow(0, b, n),
                                                 batch.baselines_N.narrow(0, b, n), options_.tau)
                                : grpo_terms(logp, old, mask, batch.advantages_N.narrow(0, b, n), options_.clip_epsilon);
      if (reference_) {
        const auto kl = k3_kl_terms(logp, ref_logp_NT.narrow(0, b, n), mask);
        if (update == 0) kl_sum += kl.detach().sum().item<double>();
        if (options_.kl_coef > 0) terms = terms + options_.kl_coef * kl.to(terms.dtype());
      }
      const auto micro_loss = terms.sum() / static_cast<double>(batch.total_episodes);
      micro_loss.backward();
      loss += micro_loss.item<double>();
    }
    if (ptx_loader_) {
      const auto ptx = ptx_loader_->next(options_.ptx_batch_size / parallel_->layout().dp);  // this rank's share
      const int64_t S = options_.ptx_seq_len;
      model::ForwardInputs inputs{ptx.tokens_BT.narrow(1, 0, S), ptx.positions_BT.narrow(1, 0, S),
                                  ptx.segment_ids_BT.defined() ? ptx.segment_ids_BT.narrow(1, 0, S) : torch::Tensor()};
      const auto targets_mask = ptx.loss_mask_BT.narrow(1, 1, S);
      // A mean over the targets of every rank's share of the PTX batch.
      const double targets = std::max(1.0, parallel_->sum_over_dp({targets_mask.sum().item<double>()})[0]);
      const auto nll_sum = masked_nll_sum(model_->forward(inputs), ptx.tokens_BT.narrow(1, 1, S), targets_mask);
      (options_.ptx_coef * nll_sum / targets).backward();
      m.ptx_loss = parallel_->sum_over_dp({nll_sum.item<double>()})[0] / targets;
    }
    // Every rank's episodes in one gradient: summed over the replicas, which then step alike.
    parallel_->sync_gradients(named_parameters_);
    std::vector<torch::Tensor> params;
    for (const auto& [name, p] : named_parameters_) params.push_back(p);
    const double max_norm = options_.train.grad_clip > 0 ? options_.train.grad_clip : 1e30;
    const double norm = torch::nn::utils::clip_grad_norm_(params, max_norm);
    if (update == 0) m.grad_norm = norm;
    optimizer_->step(m.lr);
    for (auto& layer : model_->model->decoder_layers)
      if (layer->self_attn->max_logits_H.defined()) parallel_->max_over_dp(layer->self_attn->max_logits_H);
    apply_qk_clip(model_->model, lora_ ? 0.0 : options_.train.optimizer.qk_clip_tau);  // a LoRA base is frozen
    if (update == 0) loss_sum = loss;
  }
  const auto sums = parallel_->sum_over_dp({loss_sum, kl_sum, mismatch_sum, mismatch_over, sampled_tokens});
  auto largest_mismatch = torch::tensor({mismatch}, torch::kFloat64);
  parallel_->max_over_dp(largest_mismatch);
  m.kl = sums[1] / static_cast<double>(m.trained_episodes);  // over the trained episodes
  m.logprob_mismatch = largest_mismatch.item<double>();
  m.logprob_mismatch_mean = sums[2] / std::max(1.0, sums[4]);
  m.logprob_mismatch_share_over_1e5 = sums[3] / std::max(1.0, sums[4]);
  return sums[0];
}

model::KimiForCausalLM RlTrainer::sampling_model() {
  if (!qat_) return model_;
  model::KimiForCausalLM copy(model_->model->config);
  {
    torch::NoGradGuard no_grad;
    const auto source = model::named_state(*model_);
    const auto target = model::named_state(*copy);  // the same names in the same order
    for (size_t i = 0; i < source.size(); ++i) target[i].second.copy_(source[i].second);
  }
  quant::pack_for_inference(*copy, *qat_);
  copy->compute_dtype = model_->compute_dtype;
  model::set_router_fp64(copy, options_.train.router_fp64);
  copy->eval();
  return copy;
}

void RlTrainer::save_checkpoint(int64_t step, const EvalReport& before) {
  CheckpointManager checkpoints(options_.train.run_dir, options_.train.checkpoint_keep);
  Json meta = {{"format_version", 1},
               {"kind", "rl"},
               {"tokens_seen", 0},
               {"model_config", model_->model->config.to_hf_json()},
               {"eval_before", before.to_json()},
               // Decoded samples may cut a UTF-8 sequence; stored as eval.json writes them (U+FFFD).
               {"eval_before_samples",
                Json::parse(before.samples.dump(-1, ' ', false, Json::error_handler_t::replace))},
               {"recipe", options_.recipe_toml}};
  if (ptx_loader_) meta["ptx_sampler"] = ptx_loader_->state();
  if (qat_) meta["quantization"] = quantization_meta(*qat_);  // loads, scores and exports as QAT
  if (lora_) {  // loads, scores and exports as a LoRA run of `k2forge train` does
    LoraRecord record{lora_options_, {}, lora_base_, lora_base_files_};
    for (const auto& [path, adapter] : lora_->adapters) record.modules.push_back(path);
    meta["lora"] = lora_meta(record);
  }
  auto optimizer_state = optimizer_->state_tensors();
  optimizer_state.emplace_back(kCpuRngStateName, at::detail::getDefaultCPUGenerator().get_state());
  const auto dir = checkpoints.save(step, checkpointed_policy_state(), optimizer_state, meta);
  log::info("checkpoint ", dir);
}

void RlTrainer::resume(const LoadedCheckpoint& checkpoint) {
  check(checkpoint.meta.value("kind", std::string()) == "rl", checkpoint.dir,
        ": a `k2forge train` checkpoint; k2forge rl resumes only its own runs (choose a new train.run_dir, and ",
        "name this run in train.init_from to start RL from it)");
  check(checkpoint.meta.at("model_config") == model_->model->config.to_hf_json(), checkpoint.dir,
        ": written for another model config than train.init_from's (choose a new train.run_dir)");
  const std::string meta_path = (fs::path(checkpoint.dir) / "meta.json").string();
  const auto record = lora_record_from_meta(checkpoint.meta, meta_path);
  check(record.has_value() == lora_.has_value(), meta_path, lora_ ? ": not a LoRA run, but this one trains adapters"
                                                                  : ": a LoRA run, but this one trains every weight",
        " (choose a new train.run_dir)");
  if (record) {
    std::vector<std::string> modules;
    for (const auto& [path, adapter] : lora_->adapters) modules.push_back(path);
    check(record->modules == modules && record->options.rank == lora_options_.rank, meta_path,
          ": its adapters are on other modules or of another rank than this run's (choose a new train.run_dir)");
    check_directory_checksums(lora_base_, record->base_files, meta_path);
  }
  load_named_state(*checkpoint.model, checkpointed_policy_state());
  optimizer_->load_state([&](const std::string& name, RowRange) {  // every row: RL does not shard its state
    check(checkpoint.optimizer->contains(name), checkpoint.optimizer->description(), ": optimizer state \"", name,
          "\" is missing (a checkpoint of another optimizer?)");
    return checkpoint.optimizer->load(name);
  });
  auto generator = at::detail::getDefaultCPUGenerator();  // shares the default generator's state
  generator.set_state(checkpoint.optimizer->load(kCpuRngStateName));
  if (ptx_loader_) ptx_loader_->restore(checkpoint.meta.at("ptx_sampler"));
  start_step_ = checkpoint.step;
  resumed_before_ = EvalReport::from_json(checkpoint.meta.at("eval_before"), checkpoint.meta.at("eval_before_samples"));
  log::info("resumed from ", checkpoint.dir, " (step ", start_step_, ")");
}

RlRunResult RlTrainer::run() {
  RlRunResult result;
  const fs::path run_dir(options_.train.run_dir);
  const std::string jsonl_path = (run_dir / "metrics.jsonl").string();
  // Rank 0 writes metrics, checkpoints and eval.json; every rank computes the same figures.
  const bool main = parallel_->is_main();
  std::ofstream jsonl;
  std::optional<TensorBoardWriter> tensorboard;
  if (main) {
    keep_metrics_through_step(jsonl_path, start_step_);
    jsonl.open(jsonl_path, std::ios::app);
    tensorboard.emplace((run_dir / "tensorboard").string());
  }
  const auto console = [&](const std::string& line) {
    if (main && !run_options_.quiet_console) std::cerr << line << std::endl;
  };
  result.before = resumed_before_ ? *resumed_before_ : evaluate();
  console("rl: held-out accuracy before RL " + std::to_string(result.before.accuracy) + " (" +
          std::to_string(result.before.problems) + " problems, tool calls/episode " +
          std::to_string(result.before.tool_calls_per_episode) + ")" +
          (start_step_ > 0 ? ", resuming after step " + std::to_string(start_step_) : ""));
  for (int64_t step = start_step_; step < options_.train.steps; ++step) {
    auto m = train_step(step);
    const Json json = m.to_json();
    if (main) {
      jsonl << json.dump() << "\n" << std::flush;
      std::vector<std::pair<std::string, double>> scalars;
      for (const auto& [key, value] : json.items())
        if (value.is_number() && key != "step") scalars.emplace_back("rl/" + key, value.get<double>());
      tensorboard->add_scalars(m.step, scalars);
    }
    char line[320];
    std::snprintf(line, sizeof line,
                  "rl step %ld/%ld reward %.3f+-%.3f acc %.3f len %.1f tools %.2f trunc %.2f kl %.4f loss %.4f "
                  "|dlogp| %.1e %.1fs",
                  static_cast<long>(m.step), static_cast<long>(options_.train.steps), m.reward_mean, m.reward_std,
                  m.accuracy, m.response_length, m.tool_calls_per_episode, m.truncation_rate, m.kl, m.loss,
                  m.logprob_mismatch, m.seconds);
    console(line);
    const bool due = options_.train.checkpoint_interval > 0 && m.step % options_.train.checkpoint_interval == 0;
    const bool stopping = run_options_.stop_after_steps > 0 && m.step - start_step_ == run_options_.stop_after_steps &&
                          m.step < options_.train.steps;
    if ((due || stopping || m.step == options_.train.steps) && main) save_checkpoint(m.step, result.before);
    result.steps.push_back(std::move(m));
    if (stopping) {
      result.stopped_early = true;
      console("rl: stopped after step " + std::to_string(step + 1) + " (--stop-after); rerun to continue");
      return result;
    }
  }
  result.after = evaluate();
  console("rl: held-out accuracy after RL " + std::to_string(result.after.accuracy) + " (before " +
          std::to_string(result.before.accuracy) + ")");
  const Json eval = {{"before", result.before.to_json()}, {"after", result.after.to_json()},
                     {"samples_before", result.before.samples}, {"samples_after", result.after.samples}};
  if (main) write_text_file_atomic((run_dir / "eval.json").string(), eval.dump(2, ' ', false, Json::error_handler_t::replace) + "\n");
  return result;
}

}  // namespace k2f::train::rl
