// The differences between LibTorch 1.13 (Debian, this CPU build) and 2.x (CUDA builds) that
// k2forge meets, in one place: everything else is written against the common API.
#pragma once

#include <torch/version.h>

#include <c10/core/ScalarType.h>

#define K2F_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

// A native float8 e4m3 dtype exists from 2.1; before that FP8 bytes are kept as uint8 and
// decoded by hand (quant/).
#if K2F_TORCH_AT_LEAST(2, 1)
#define K2F_HAS_FLOAT8 1
#else
#define K2F_HAS_FLOAT8 0
#endif

// One grouped GEMM for all the experts of a layer (CUDA, bf16) from 2.8: at::_grouped_mm.
#if K2F_TORCH_AT_LEAST(2, 8)
#define K2F_HAS_GROUPED_MM 1
#include <ATen/ops/_grouped_mm.h>
#else
#define K2F_HAS_GROUPED_MM 0
#endif

// c10::Allocator: allocate() is const in 1.13 and not from 2.3, which also makes copy_data pure.
#if K2F_TORCH_AT_LEAST(2, 3)
#define K2F_ALLOCATE_CONST
#define K2F_ALLOCATOR_HAS_COPY_DATA 1
#else
#define K2F_ALLOCATE_CONST const
#define K2F_ALLOCATOR_HAS_COPY_DATA 0
#endif

namespace k2f::compat {

inline const char* torch_version() { return TORCH_VERSION; }

}  // namespace k2f::compat
