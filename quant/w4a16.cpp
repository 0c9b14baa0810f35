#include "quant/w4a16.h"

#include <ATen/Parallel.h>

#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "base/error.h"

namespace k2f::quant {

namespace {

constexpr int64_t kCodesPerWord = 8;
constexpr int64_t kTileBytes = 256 * 1024;  // one fp32 tile stays in L2

// Dequantises rows [row_begin, row_begin + rows) into out (fp32, row-major [rows, I]).
void dequantize_into(const PackedInt4Weight& weight, const float* scales, int64_t row_begin, int64_t rows, float* out) {
  const int64_t I = weight.in_features, W = weight.packed_OW.size(1), G = I / weight.group_size;
  const int32_t* packed = weight.packed_OW.data_ptr<int32_t>();
  float table[16];
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* words = packed + (row_begin + r) * W;
    float* row = out + r * I;
    for (int64_t g = 0; g < G; ++g) {
      const float scale = scales[(row_begin + r) * G + g];
      for (int u = 0; u < 16; ++u) table[u] = static_cast<float>(u - 8) * scale;
      const int64_t begin = g * weight.group_size, end = begin + weight.group_size;
      for (int64_t i = begin; i < end; ++i) {
        const uint32_t word = static_cast<uint32_t>(words[i / kCodesPerWord]);
        row[i] = table[(word >> (4 * (i % kCodesPerWord))) & 0xF];
      }
    }
  }
}

// Up to this many activation rows (decode steps, small batches) use the direct kernel below:
// each chunk of 32 codes is dequantised in registers and multiplied into every row, so the packed
// weight is read once per 8 rows and no fp32 tile is written.
constexpr int64_t kDirectRows = 16;

#if defined(__x86_64__)
bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  return has;
}

// A group scale as fp32: bf16 scales (what exports hold) are read in place, their bits shifted
// into an fp32's upper half, so no converted copy of the scales is made per call.
inline float scale_as_float(uint16_t bf16_bits) {
  const uint32_t bits = static_cast<uint32_t>(bf16_bits) << 16;
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}
inline float scale_as_float(float value) { return value; }

// Column j (0..31) of lane k in the first and second half of a 32-column chunk: the 16 bytes are
// broadcast to every 128-bit quarter, so lane k holds word k % 4 (columns 8(k%4)..8(k%4)+7) and a
// per-lane shift of 4(k/4) (first half) or 16 + 4(k/4) (second half) brings column 8(k%4) + k/4
// (or + 4 + k/4) into its low nibble, which is all vpermps reads of an index.
int64_t chunk_column(int64_t half, int64_t lane) { return 8 * (lane % 4) + 4 * half + lane / 4; }

// The 32 dequantised weights of one chunk: shifts bring each lane's nibble low, vpermps looks it up.
__attribute__((target("avx512f,avx512bw"), always_inline)) inline void chunk_weights(const uint8_t* bytes,
                                                                                       __m512 table, __m512* first,
                                                                                       __m512* second) {
  const __m512i first_shifts = _mm512_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12);
  const __m512i second_shifts = _mm512_setr_epi32(16, 16, 16, 16, 20, 20, 20, 20, 24, 24, 24, 24, 28, 28, 28, 28);
  const __m512i words = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes)));
  *first = _mm512_permutexvar_ps(_mm512_srlv_epi32(words, first_shifts), table);
  *second = _mm512_permutexvar_ps(_mm512_srlv_epi32(words, second_shifts), table);
}

template <typename Scale>
__attribute__((target("avx512f,avx512bw"), always_inline)) inline __m512 group_table(const Scale* row_scales, int64_t g) {
  const __m512 centered = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
  return _mm512_mul_ps(centered, _mm512_set1_ps(scale_as_float(row_scales[g])));
}

// y_NO[n, o] = sum_i x[n, i] * code[o, i] * scale[o, i / group] for NB activation rows and output
// rows [row_begin, row_end); fp32, group size and in_features multiples of 32. Per group a 16-entry
// table holds (u - 8) * scale for the stored nibbles u = 0..15 (exact in fp32), and each lane looks
// its weight up with vpermps, so a chunk of 32 weights costs two shifts, two lookups and two FMAs
// per activation row. `xperm` holds the activations in chunk_column order. NB is a compile-time
// constant so the accumulators stay in registers. Only the order of the sum differs from
// x @ dequantize(W)^T.
template <int NB, typename Scale>
__attribute__((target("avx512f,avx512bw"))) void direct_rows_avx512(const PackedInt4Weight& weight,
                                                                      const Scale* scales, const float* xperm_NI,
                                                                      int64_t row_begin, int64_t row_end,
                                                                      float* y_NO) {
  // Independent FMA chains per activation row, so few rows still keep both FMA units busy
  // (one chain would wait out each FMA's latency): chunks are taken kStep at a time.
  constexpr int kStep = NB >= 4 ? 1 : 4 / NB;
  const int64_t I = weight.in_features, G = I / weight.group_size, O = weight.out_features();
  const int64_t chunks = I / 32, chunks_per_group = weight.group_size / 32;
  const auto* packed = reinterpret_cast<const uint8_t*>(weight.packed_OW.data_ptr<int32_t>());
  for (int64_t o = row_begin; o < row_end; ++o) {
    const uint8_t* row = packed + o * (I / 2);
    const Scale* row_scales = scales + o * G;
    __m512 acc[NB][2 * kStep];
    for (int n = 0; n < NB; ++n)
      for (int k = 0; k < 2 * kStep; ++k) acc[n][k] = _mm512_setzero_ps();
    int64_t q = 0;
    for (; q + kStep <= chunks; q += kStep) {
#pragma GCC unroll 4
      for (int k = 0; k < kStep; ++k) {
        __m512 first, second;
        chunk_weights(row + (q + k) * 16, group_table(row_scales, (q + k) / chunks_per_group), &first, &second);
        for (int n = 0; n < NB; ++n) {
          const float* x = xperm_NI + n * I + (q + k) * 32;
          acc[n][2 * k] = _mm512_fmadd_ps(first, _mm512_loadu_ps(x), acc[n][2 * k]);
          acc[n][2 * k + 1] = _mm512_fmadd_ps(second, _mm512_loadu_ps(x + 16), acc[n][2 * k + 1]);
        }
      }
    }
    for (; q < chunks; ++q) {
      __m512 first, second;
      chunk_weights(row + q * 16, group_table(row_scales, q / chunks_per_group), &first, &second);
      for (int n = 0; n < NB; ++n) {
        const float* x = xperm_NI + n * I + q * 32;
        acc[n][0] = _mm512_fmadd_ps(first, _mm512_loadu_ps(x), acc[n][0]);
        acc[n][1] = _mm512_fmadd_ps(second, _mm512_loadu_ps(x + 16), acc[n][1]);
      }
    }
    for (int n = 0; n < NB; ++n) {
      __m512 total = acc[n][0];
      for (int k = 1; k < 2 * kStep; ++k) total = _mm512_add_ps(total, acc[n][k]);
      y_NO[n * O + o] = _mm512_reduce_add_ps(total);
    }
  }
}

// Activation rows in blocks of 8, 4, 2 and 1, each block one pass over this thread's output rows.
template <typename Scale>
void direct_rows(const PackedInt4Weight& weight, const Scale* scales, const float* xperm_NI, int64_t N,
                 int64_t row_begin, int64_t row_end, float* y_NO) {
  const int64_t I = weight.in_features;
  for (int64_t n = 0; n < N;) {
    const float* x = xperm_NI + n * I;
    float* y = y_NO + n * weight.out_features();
    if (N - n >= 8) {
      direct_rows_avx512<8>(weight, scales, x, row_begin, row_end, y);
      n += 8;
    } else if (N - n >= 4) {
      direct_rows_avx512<4>(weight, scales, x, row_begin, row_end, y);
      n += 4;
    } else if (N - n >= 2) {
      direct_rows_avx512<2>(weight, scales, x, row_begin, row_end, y);
      n += 2;
    } else {
      direct_rows_avx512<1>(weight, scales, x, row_begin, row_end, y);
      n += 1;
    }
  }
}
#endif

bool direct_kernel_applies(const PackedInt4Weight& weight, int64_t rows) {
#if defined(__x86_64__)
  return rows <= kDirectRows && weight.group_size % 32 == 0 && weight.in_features % 32 == 0 && cpu_has_avx512();
#else
  (void)weight;
  (void)rows;
  return false;
#endif
}

// The direct kernel over every output row, split across the intra-op threads; fp32 in and out.
torch::Tensor direct_linear(const torch::Tensor& x_NI, const PackedInt4Weight& weight) {
  const int64_t N = x_NI.size(0), I = weight.in_features;
  const auto x = x_NI.to(torch::kFloat32).contiguous();
  auto y_NO = torch::empty({N, weight.out_features()}, x.options());
#if defined(__x86_64__)
  std::vector<int64_t> order(32);
  for (int64_t lane = 0; lane < 32; ++lane) order[lane] = chunk_column(lane / 16, lane % 16);
  const auto xperm = x.view({N, I / 32, 32}).index_select(2, torch::tensor(order)).contiguous();
  const bool bf16_scales = weight.scales_OG.scalar_type() == torch::kBFloat16 && weight.scales_OG.is_contiguous();
  const auto scales = bf16_scales ? weight.scales_OG : weight.scales_OG.to(torch::kFloat32).contiguous();
  at::parallel_for(0, weight.out_features(), 64, [&](int64_t begin, int64_t end) {
    if (bf16_scales) {
      direct_rows(weight, reinterpret_cast<const uint16_t*>(scales.data_ptr<at::BFloat16>()), xperm.data_ptr<float>(), N,
                  begin, end, y_NO.data_ptr<float>());
    } else {
      direct_rows(weight, scales.data_ptr<float>(), xperm.data_ptr<float>(), N, begin, end, y_NO.data_ptr<float>());
    }
  });
#endif
  return y_NO;
}

class W4A16Kernel : public model::LinearKernel {
 public:
  explicit W4A16Kernel(PackedInt4Weight weight) : weight_(std::move(weight)) {}
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& /*weight*/) const override {
    return w4a16_linear(x, weight_);
  }

 private:
  PackedInt4Weight weight_;
};

}  // namespace

void PackedInt4Weight::validate(const std::string& where) const {
  check(packed_OW.dim() == 2 && packed_OW.scalar_type() == torch::kInt32, where, ": weight_packed must be int32 [out, in/8], got ",
        packed_OW.scalar_type(), " ", packed_OW.sizes());
  check(group_size > 0 && in_features > 0 && in_features % group_size == 0, where, ": group size ", group_size,
        " does not divide in_features ", in_features);
  const int64_t words = (in_features + kCodesPerWord - 1) / kCodesPerWord;
  check(packed_OW.size(1) == words, where, ": weight_packed has ", packed_OW.size(1), " words per row, expected ",
        words, " for in_features ", in_features);
  check(scales_OG.dim() == 2 && c10::isFloatingType(scales_OG.scalar_type()), where,
        ": weight_scale must be a floating [out, in/group] tensor, got ", scales_OG.scalar_type(), " ", scales_OG.sizes());
  check(scales_OG.size(0) == packed_OW.size(0) && scales_OG.size(1) == in_features / group_size, where,
        ": weight_scale has shape ", scales_OG.sizes(), ", expected [", packed_OW.size(0), ", ", in_features / group_size,
        "] (out_features, in_features / group_size ", group_size, ")");
}

uint64_t PackedInt4Weight::bytes() const {
  return static_cast<uint64_t>(packed_OW.numel() * 4 + scales_OG.numel() * scales_OG.element_size());
}

torch::Tensor dequantize_rows(const PackedInt4Weight& weight, int64_t row_begin, int64_t rows) {
  const auto scales = weight.scales_OG.to(torch::kFloat32).contiguous();
  auto out = torch::empty({rows, weight.in_features}, torch::kFloat32);
  dequantize_into(weight, scales.data_ptr<float>(), row_begin, rows, out.data_ptr<float>());
  return out;
}

torch::Tensor w4a16_linear(const torch::Tensor& x, const PackedInt4Weight& weight) {
  check(!(torch::GradMode::is_enabled() && x.requires_grad()),
        "W4A16 kernels are for inference; to train, load the INT4 directory dequantised into master weights");
  check(x.size(-1) == weight.in_features, "W4A16 linear: input has ", x.size(-1), " features, the weight expects ",
        weight.in_features);
  const int64_t O = weight.out_features(), I = weight.in_features;
  auto sizes = x.sizes().vec();
  sizes.back() = O;
  const int64_t rows = x.numel() / I;
  if (x.scalar_type() != torch::kFloat64 && direct_kernel_applies(weight, rows))
    return direct_linear(x.reshape({rows, I}), weight).reshape(sizes).to(x.scalar_type());
  const auto scales = weight.scales_OG.to(torch::kFloat32).contiguous();
  const auto compute = x.scalar_type() == torch::kFloat64 ? torch::kFloat64 : x.scalar_type();
  const auto x_NI = x.reshape({-1, I}).to(compute).contiguous();
  auto y_NO = torch::empty({x_NI.size(0), O}, x_NI.options());
  const int64_t tile_rows = std::max<int64_t>(16, std::min<int64_t>(O, kTileBytes / (4 * I)));
  const int64_t num_tiles = (O + tile_rows - 1) / tile_rows;
  at::parallel_for(0, num_tiles, 1, [&](int64_t tile_begin, int64_t tile_end) {
    auto tile = torch::empty({tile_rows, I}, torch::kFloat32);
    for (int64_t t = tile_begin; t < tile_end; ++t) {
      const int64_t row_begin = t * tile_rows, rows = std::min(tile_rows, O - row_begin);
      dequantize_into(weight, scales.data_ptr<float>(), row_begin, rows, tile.data_ptr<float>());
      // A column block of y (leading dimension O): the same x @ W^T product the dense layer runs.
      auto out = y_NO.narrow(1, row_begin, rows);
      torch::mm_out(out, x_NI, tile.narrow(0, 0, rows).to(compute).t());
    }
  });
  return y_NO.reshape(sizes).to(x.scalar_type());
}

std::shared_ptr<model::LinearKernel> make_w4a16_kernel(PackedInt4Weight weight) {
  weight.validate("W4A16 kernel");
  weight.packed_OW = weight.packed_OW.contiguous();
  return std::make_shared<W4A16Kernel>(std::move(weight));
}

}  // namespace k2f::quant
