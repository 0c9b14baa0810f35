#include "model/experts.h"

#include "base/error.h"
#include "base/torch_compat.h"

namespace k2f::model {

RoutedExpertsImpl::RoutedExpertsImpl(int64_t hidden_size, int64_t expert_intermediate_size, int64_t first_expert,
                                     int64_t num_local)
    : first_expert_(first_expert) {
  for (int64_t e = 0; e < num_local; ++e) {
    experts_.push_back(
        register_module(std::to_string(first_expert + e), MLP(hidden_size, expert_intermediate_size)));
  }
}

bool RoutedExpertsImpl::runs_grouped_gemm(const torch::Tensor& x) const {
  if (!K2F_HAS_GROUPED_MM || !use_grouped_gemm || !x.is_cuda() || x.scalar_type() != torch::kBFloat16) return false;
  for (const auto& e : experts_)
    if (e->gate_proj->kernel || e->up_proj->kernel || e->down_proj->kernel) return false;
  return !experts_.empty();
}

torch::Tensor RoutedExpertsImpl::forward_sorted_grouped_gemm(const torch::Tensor& x_sorted_MD,
                                                             const std::vector<int64_t>& count_per_local) const {
#if K2F_HAS_GROUPED_MM
  const auto dtype = x_sorted_MD.scalar_type();
  // [G, in, out] views of the bf16 copies of each expert's [out, in] weight (column-major per group).
  const auto stacked = [&](const Linear MLPImpl::*which) {
    std::vector<torch::Tensor> weights;
    for (const auto& e : experts_) weights.push_back(((*e).*which)->weight.to(dtype));
    return torch::stack(weights).transpose(1, 2);
  };
  std::vector<int32_t> ends;
  int64_t end = 0;
  for (const int64_t count : count_per_local) ends.push_back(static_cast<int32_t>(end += count));
  const auto ends_G = torch::tensor(ends, torch::kInt32).to(x_sorted_MD.device());
  const auto gate_MI = at::_grouped_mm(x_sorted_MD, stacked(&MLPImpl::gate_proj), ends_G);
  const auto up_MI = at::_grouped_mm(x_sorted_MD, stacked(&MLPImpl::up_proj), ends_G);
  return at::_grouped_mm(torch::silu(gate_MI) * up_MI, stacked(&MLPImpl::down_proj), ends_G);
#else
  (void)count_per_local;
  return x_sorted_MD;
#endif
}

torch::Tensor RoutedExpertsImpl::forward_sorted(const torch::Tensor& x_sorted_MD,
                                                const std::vector<int64_t>& count_per_local) const {
  if (x_sorted_MD.size(0) > 0 && runs_grouped_gemm(x_sorted_MD))
    return forward_sorted_grouped_gemm(x_sorted_MD, count_per_local);
  std::vector<torch::Tensor> blocks;
  int64_t offset = 0;
  for (size_t e = 0; e < count_per_local.size(); ++e) {
    const int64_t count = count_per_local[e];
    if (count == 0) continue;
    blocks.push_back(experts_[e]->forward(x_sorted_MD.narrow(0, offset, count)));
    offset += count;
  }
  if (blocks.empty()) return x_sorted_MD.narrow(0, 0, 0);
  return torch::cat(blocks, 0);
}

torch::Tensor RoutedExpertsImpl::forward_grouped(const torch::Tensor& x_ND, const torch::Tensor& idx_NK,
                                                 const torch::Tensor& weight_NK) const {
  const int64_t K = idx_NK.size(1);
  const auto local_M = idx_NK.reshape({-1}) - first_expert_;
  const auto order_M = torch::argsort(local_M);  // pairs grouped by expert
  const auto token_M = torch::div(order_M, K, "floor");
  const auto counts = torch::bincount(local_M, {}, num_local()).cpu();
  const std::vector<int64_t> count_per_local(counts.data_ptr<int64_t>(), counts.data_ptr<int64_t>() + num_local());
  const auto y_sorted_MD = forward_sorted(x_ND.index_select(0, token_M), count_per_local);
  const auto weight_M1 = weight_NK.reshape({-1}).index_select(0, order_M).unsqueeze(1);
  const auto wide = accumulate_dtype(x_ND.scalar_type());
  const auto weighted_MD = y_sorted_MD.to(wide) * weight_M1.to(wide);
  return torch::zeros(x_ND.sizes(), x_ND.options().dtype(wide))
      .index_add(0, token_M, weighted_MD)
      .to(x_ND.scalar_type());
}

torch::Tensor RoutedExpertsImpl::forward_loop(const torch::Tensor& x_ND, const torch::Tensor& idx_NK,
                                              const torch::Tensor& weight_NK) const {
  const auto wide = accumulate_dtype(x_ND.scalar_type());
  auto y_ND = torch::zeros(x_ND.sizes(), x_ND.options().dtype(wide));
  for (int64_t e = 0; e < num_local(); ++e) {
    const auto chosen_NK = idx_NK == (first_expert_ + e);
    const auto rows = chosen_NK.any(1).nonzero().squeeze(1);
    if (rows.numel() == 0) continue;
    const auto weight_R1 = (weight_NK * chosen_NK).sum(1).index_select(0, rows).unsqueeze(1);
    const auto y_RD = experts_[e]->forward(x_ND.index_select(0, rows)).to(wide) * weight_R1.to(wide);
    y_ND = y_ND.index_add(0, rows, y_RD);
  }
  return y_ND.to(x_ND.scalar_type());
}

}  // namespace k2f::model
