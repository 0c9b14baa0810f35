#include "quant/w4a16_direct.h"

#include <ATen/Parallel.h>

#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__x86_64__)
// GCC 12's AVX-512 headers pass _mm512_undefined_*() through masked builtins, which
// -Wmaybe-uninitialized reports at every use (GCC bug 105593); nothing here is uninitialised.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

#include "base/error.h"

namespace k2f::quant::direct {

#if defined(__x86_64__)
namespace {

#define K2F_AVX512_FP32 "avx512f,avx512bw"
#define K2F_AVX512_BF16 "avx512f,avx512bw,avx512dq,avx512bf16"

bool cpu_has_avx512() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  return has;
}

bool cpu_has_avx512_bf16() {
  static const bool has = cpu_has_avx512() && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512bf16");
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

// Calls rows(std::integral_constant<int, NB>{}, n) for the activation rows [n, n + NB) in blocks
// of NB = 8, 4, 2 and 1: NB is a compile-time constant so a kernel's accumulators stay in registers.
template <typename Rows>
void in_row_blocks(int64_t N, const Rows& rows) {
  for (int64_t n = 0; n < N;) {
    if (N - n >= 8) {
      rows(std::integral_constant<int, 8>{}, n);
      n += 8;
    } else if (N - n >= 4) {
      rows(std::integral_constant<int, 4>{}, n);
      n += 4;
    } else if (N - n >= 2) {
      rows(std::integral_constant<int, 2>{}, n);
      n += 2;
    } else {
      rows(std::integral_constant<int, 1>{}, n);
      n += 1;
    }
  }
}

// The group of each 32-column run: looked up in the kernels' loops, where a division per run
// would cost as much as the run's arithmetic.
std::vector<int32_t> groups_of_32_column_runs(int64_t in_features, int64_t group_size) {
  std::vector<int32_t> groups(in_features / 32);
  for (size_t r = 0; r < groups.size(); ++r) groups[r] = static_cast<int32_t>(static_cast<int64_t>(r) * 32 / group_size);
  return groups;
}

// R output rows at a time for NB activation rows: each activation load serves R rows (with 8
// activation rows of 7168 columns, x outgrows L1 and its loads would bound the kernel), and
// R * NB >= 4 independent accumulator chains hide the FMA latency.
template <int NB>
constexpr int kOutputRows = NB >= 8 ? 2 : 4;

// y_NO[n, o + r] = the sum of acc[r][n]'s lanes.
template <int R, int NB>
__attribute__((target(K2F_AVX512_FP32), always_inline)) inline void store_row_sums(const __m512 (&acc)[R][NB], int64_t o,
                                                                                    int64_t O, float* y_NO) {
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < NB; ++n) y_NO[n * O + o + r] = _mm512_reduce_add_ps(acc[r][n]);
}

// What every tile of one call reads and writes; X is the activations' element (bf16 bits or fp32).
template <typename Scale, typename X>
struct Operands {
  Operands(const PackedInt4Weight& weight, const Scale* scales, const X* x_NI, float* y_NO)
      : packed(reinterpret_cast<const uint8_t*>(weight.packed_OW.data_ptr<int32_t>())),
        scales(scales),
        run_groups(groups_of_32_column_runs(weight.in_features, weight.group_size)),
        x_NI(x_NI),
        y_NO(y_NO),
        I(weight.in_features),
        G(weight.in_features / weight.group_size),
        O(weight.out_features()) {}
  const uint8_t* packed;            // [O, I / 2] bytes
  const Scale* scales;              // [O, G]
  std::vector<int32_t> run_groups;  // the group of each 32-column run
  const X* x_NI;                    // in the kernel's column order
  float* y_NO;
  int64_t I, G, O;
};

// ---- bf16 activations: vdpbf16ps ----------------------------------------------------------------

// Activation order of a 64-column block: the block's 32 packed bytes widen to 32 words, word b
// holding column 2b in its low nibble and column 2b + 1 in its high one, so the activations go even
// columns first (x[0], x[2], ..., x[62]), then odd ones.
torch::Tensor bf16_block_order(const torch::Tensor& x_NI) {
  const int64_t N = x_NI.size(0), I = x_NI.size(1);
  return x_NI.to(torch::kBFloat16).contiguous().view({N, I / 64, 32, 2}).transpose(2, 3).contiguous();
}

// Word e holds bf16(e % 16 - 8). vpermw reads the low 5 bits of each index, so a word holding a
// whole byte finds its low nibble's value without masking. Small integers are exact in bf16.
__attribute__((target(K2F_AVX512_BF16))) __m512i bf16_code_table() {
  alignas(64) uint16_t words[32];
  for (int e = 0; e < 32; ++e) {
    const float value = static_cast<float>(e % 16 - 8);
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    words[e] = static_cast<uint16_t>(bits >> 16);
  }
  return _mm512_load_si512(words);
}

// 32 bf16 values from their bits.
__attribute__((target(K2F_AVX512_BF16), always_inline)) inline __m512bh as_bf16(__m512i bits) {
  return (__m512bh)bits;
}

// The codes of one 64-column block as bf16: `low` pairs with the even columns, `high` with the odd.
__attribute__((target(K2F_AVX512_BF16), always_inline)) inline void bf16_block_codes(const uint8_t* bytes, __m512i table,
                                                                                      __m512i* low, __m512i* high) {
  const __m512i words = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bytes)));
  *low = _mm512_permutexvar_epi16(words, table);
  *high = _mm512_permutexvar_epi16(_mm512_srli_epi16(words, 4), table);
}

// vdpbf16ps lane k sums columns 4k..4k+3 of the block, so lanes 0-7 take the first half's scale
// and lanes 8-15 the second's. bf16 scales: both broadcast as one dword, then each lane's upper
// half picks its word (bytes 0x80 of the shuffle zero the lower half).
__attribute__((target(K2F_AVX512_BF16), always_inline)) inline __m512 block_scales(const uint16_t* row_scales,
                                                                                    int64_t first, int64_t second) {
  const __m512i pick = _mm512_setr_epi32(0x01008080, 0x01008080, 0x01008080, 0x01008080, 0x01008080, 0x01008080,
                                         0x01008080, 0x01008080, 0x03028080, 0x03028080, 0x03028080, 0x03028080,
                                         0x03028080, 0x03028080, 0x03028080, 0x03028080);
  const int32_t pair = static_cast<int32_t>(row_scales[first] | (static_cast<uint32_t>(row_scales[second]) << 16));
  return _mm512_castsi512_ps(_mm512_shuffle_epi8(_mm512_set1_epi32(pair), pick));
}
__attribute__((target(K2F_AVX512_BF16), always_inline)) inline __m512 block_scales(const float* row_scales,
                                                                                    int64_t first, int64_t second) {
  return _mm512_insertf32x8(_mm512_set1_ps(row_scales[first]), _mm256_set1_ps(row_scales[second]), 1);
}


// y_NO[n, o..o+R) for NB activation rows (bf16, in bf16_block_order). Per 64-column block and
// output row: one widening load, two table lookups and one scale vector; then per activation row
// and output row two vdpbf16ps (the products code * x are exact in fp32; vdpbf16ps reads subnormal
// bf16 activations as zero) and one FMA with the scales. Only fp32 summation order differs from
// x @ dequantize(W)^T.
template <int NB, int R, typename Scale>
__attribute__((target(K2F_AVX512_BF16), always_inline)) inline void bf16_row_tile(
    const Operands<Scale, uint16_t>& in, __m512i table, int64_t o) {
  const int64_t I = in.I, blocks = I / 64;
  const int32_t* half_groups = in.run_groups.data();
  __m512 acc[R][NB];
  for (auto& row : acc)
    for (auto& a : row) a = _mm512_setzero_ps();
  for (int64_t b = 0; b < blocks; ++b) {
    __m512i low[R], high[R];
    __m512 scale[R];
    for (int r = 0; r < R; ++r) {
      bf16_block_codes(in.packed + (o + r) * (I / 2) + b * 32, table, &low[r], &high[r]);
      scale[r] = block_scales(in.scales + (o + r) * in.G, half_groups[2 * b], half_groups[2 * b + 1]);
    }
    for (int n = 0; n < NB; ++n) {
      const __m512bh x_even = as_bf16(_mm512_loadu_si512(in.x_NI + n * I + b * 64));
      const __m512bh x_odd = as_bf16(_mm512_loadu_si512(in.x_NI + n * I + b * 64 + 32));
      for (int r = 0; r < R; ++r) {
        const __m512 pairs = _mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_setzero_ps(), as_bf16(low[r]), x_even),
                                              as_bf16(high[r]), x_odd);
        acc[r][n] = _mm512_fmadd_ps(scale[r], pairs, acc[r][n]);
      }
    }
  }
  store_row_sums<R, NB>(acc, o, in.O, in.y_NO);
}

// y_NO[n, o] for NB activation rows and output rows [row_begin, row_end).
template <int NB, typename Scale>
__attribute__((target(K2F_AVX512_BF16))) void bf16_rows(const PackedInt4Weight& weight, const Scale* scales,
                                                        const uint16_t* x_NI, int64_t row_begin, int64_t row_end,
                                                        float* y_NO) {
  constexpr int R = kOutputRows<NB>;
  const Operands<Scale, uint16_t> in(weight, scales, x_NI, y_NO);
  const __m512i table = bf16_code_table();
  int64_t o = row_begin;
  for (; o + R <= row_end; o += R) bf16_row_tile<NB, R>(in, table, o);
  for (; o < row_end; ++o) bf16_row_tile<NB, 1>(in, table, o);
}

// ---- fp32 activations: vpermps tables and FMAs ---------------------------------------------------

// Column j (0..31) of lane k in the first and second half of a 32-column chunk: the 16 bytes are
// broadcast to every 128-bit quarter, so lane k holds word k % 4 (columns 8(k%4)..8(k%4)+7) and a
// per-lane shift of 4(k/4) (first half) or 16 + 4(k/4) (second half) brings column 8(k%4) + k/4
// (or + 4 + k/4) into its low nibble, which is all vpermps reads of an index.
int64_t chunk_column(int64_t half, int64_t lane) { return 8 * (lane % 4) + 4 * half + lane / 4; }

torch::Tensor fp32_chunk_order(const torch::Tensor& x_NI) {
  const int64_t N = x_NI.size(0), I = x_NI.size(1);
  std::vector<int64_t> order(32);
  for (int64_t lane = 0; lane < 32; ++lane) order[lane] = chunk_column(lane / 16, lane % 16);
  return x_NI.to(torch::kFloat32).contiguous().view({N, I / 32, 32}).index_select(2, torch::tensor(order)).contiguous();
}

// The 32 dequantised weights of one chunk: shifts bring each lane's nibble low, vpermps looks it up.
__attribute__((target(K2F_AVX512_FP32), always_inline)) inline void chunk_weights(const uint8_t* bytes, __m512 table,
                                                                                   __m512* first, __m512* second) {
  const __m512i first_shifts = _mm512_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12);
  const __m512i second_shifts = _mm512_setr_epi32(16, 16, 16, 16, 20, 20, 20, 20, 24, 24, 24, 24, 28, 28, 28, 28);
  const __m512i words = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bytes)));
  *first = _mm512_permutexvar_ps(_mm512_srlv_epi32(words, first_shifts), table);
  *second = _mm512_permutexvar_ps(_mm512_srlv_epi32(words, second_shifts), table);
}

// (u - 8) * scale for the stored nibbles u = 0..15 of group g (exact in fp32).
template <typename Scale>
__attribute__((target(K2F_AVX512_FP32), always_inline)) inline __m512 group_table(const Scale* row_scales, int64_t g) {
  const __m512 centered = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
  return _mm512_mul_ps(centered, _mm512_set1_ps(scale_as_float(row_scales[g])));
}


// y_NO[n, o..o+R) for NB activation rows (fp32, in fp32_chunk_order). Per 32-column chunk and
// output row: two shifts and two lookups in the group's table; then per activation row two loads
// shared by the R output rows and two FMAs per output row. Only the order of the sum differs from
// x @ dequantize(W)^T.
template <int NB, int R, typename Scale>
__attribute__((target(K2F_AVX512_FP32), always_inline)) inline void fp32_row_tile(const Operands<Scale, float>& in,
                                                                                   int64_t o) {
  const int64_t I = in.I, chunks = I / 32;
  __m512 acc[R][NB];
  for (auto& row : acc)
    for (auto& a : row) a = _mm512_setzero_ps();
  for (int64_t q = 0; q < chunks; ++q) {
    __m512 first[R], second[R];
    for (int r = 0; r < R; ++r) {
      chunk_weights(in.packed + (o + r) * (I / 2) + q * 16, group_table(in.scales + (o + r) * in.G, in.run_groups[q]),
                    &first[r], &second[r]);
    }
    for (int n = 0; n < NB; ++n) {
      const __m512 x_first = _mm512_loadu_ps(in.x_NI + n * I + q * 32);
      const __m512 x_second = _mm512_loadu_ps(in.x_NI + n * I + q * 32 + 16);
      for (int r = 0; r < R; ++r)
        acc[r][n] = _mm512_fmadd_ps(second[r], x_second, _mm512_fmadd_ps(first[r], x_first, acc[r][n]));
    }
  }
  store_row_sums<R, NB>(acc, o, in.O, in.y_NO);
}

// y_NO[n, o] for NB activation rows and output rows [row_begin, row_end).
template <int NB, typename Scale>
__attribute__((target(K2F_AVX512_FP32))) void fp32_rows(const PackedInt4Weight& weight, const Scale* scales,
                                                       const float* x_NI, int64_t row_begin, int64_t row_end,
                                                       float* y_NO) {
  constexpr int R = kOutputRows<NB>;
  const Operands<Scale, float> in(weight, scales, x_NI, y_NO);
  int64_t o = row_begin;
  for (; o + R <= row_end; o += R) fp32_row_tile<NB, R>(in, o);
  for (; o < row_end; ++o) fp32_row_tile<NB, 1>(in, o);
}

// Calls with_pointer(const uint16_t* or const float*) on the scales: bf16 scales in place, others
// converted to fp32 once per call.
template <typename WithPointer>
void with_scales(const PackedInt4Weight& weight, const WithPointer& with_pointer) {
  if (weight.scales_OG.scalar_type() == torch::kBFloat16 && weight.scales_OG.is_contiguous()) {
    with_pointer(reinterpret_cast<const uint16_t*>(weight.scales_OG.data_ptr<at::BFloat16>()));
  } else {
    const auto scales = weight.scales_OG.to(torch::kFloat32).contiguous();
    with_pointer(static_cast<const float*>(scales.data_ptr<float>()));
  }
}

}  // namespace
#endif

Kernel choose(const PackedInt4Weight& weight, torch::ScalarType x_dtype) {
#if defined(__x86_64__)
  if (x_dtype == torch::kFloat64 || weight.group_size % 32 != 0 || weight.in_features % 32 != 0 ||
      !cpu_has_avx512())
    return Kernel::none;
  if (x_dtype == torch::kBFloat16 && weight.in_features % 64 == 0 && cpu_has_avx512_bf16()) return Kernel::bf16_pairs;
  return Kernel::fp32;
#else
  (void)weight;
  (void)x_dtype;
  return Kernel::none;
#endif
}

torch::Tensor linear(const torch::Tensor& x_NI, const PackedInt4Weight& weight, Kernel kernel) {
  check(kernel != Kernel::none, "W4A16 direct kernel: none applies to this product");
  const int64_t N = x_NI.size(0), I = weight.in_features, O = weight.out_features();
  auto y_NO = torch::empty({N, O}, torch::kFloat32);
#if defined(__x86_64__)
  float* y = y_NO.data_ptr<float>();
  with_scales(weight, [&](const auto* scales) {
    if (kernel == Kernel::bf16_pairs) {
      const auto x = bf16_block_order(x_NI);
      const auto* x_data = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
      at::parallel_for(0, O, 64, [&](int64_t begin, int64_t end) {
        in_row_blocks(N, [&](auto nb, int64_t n) {
          bf16_rows<decltype(nb)::value>(weight, scales, x_data + n * I, begin, end, y + n * O);
        });
      });
    } else {
      const auto x = fp32_chunk_order(x_NI);
      const float* x_data = x.data_ptr<float>();
      at::parallel_for(0, O, 64, [&](int64_t begin, int64_t end) {
        in_row_blocks(N, [&](auto nb, int64_t n) {
          fp32_rows<decltype(nb)::value>(weight, scales, x_data + n * I, begin, end, y + n * O);
        });
      });
    }
  });
#endif
  return y_NO;
}

}  // namespace k2f::quant::direct
