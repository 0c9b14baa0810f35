// The quintic Newton-Schulz iteration Muon uses to orthogonalise an update (K2_REFERENCE
// section 4): five steps with coefficients (3.4445, -4.7750, 2.0315) on the Frobenius-normalised
// matrix, transposed so the Gram matrix is the small side. It runs in a chosen dtype (bf16 as in
// the reference implementation, fp32 for tests and small models) and returns that dtype.
#pragma once

#include <torch/types.h>

namespace k2f::train {

// G [rows, cols] -> approximately U V^T of G's SVD.
torch::Tensor newton_schulz5(const torch::Tensor& G, torch::ScalarType dtype = torch::kBFloat16, int steps = 5);

}  // namespace k2f::train
