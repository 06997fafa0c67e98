// The avx512 dispatch table: the shared kernels compiled for this instruction set (CMake sets the
// target flags of this file), with its own sign packing and XNOR-popcount dot products.
#include "kernels.h"
#include "bitpack/bitpack_avx512.h"

namespace bimlp::kernels::avx512 {

constexpr int SGEMM_MR = 6;  // float GEMM accumulator rows that fit in this ISA's registers
constexpr int SGEMM_PP = 2;  // float GEMM weight panels per tile (6 x 64 accumulators: 24 of 32 zmm)
constexpr int TOKEN_CHUNK = 64;  // int8 lanes of one vector register (zmm)

#include "epilogue/epilogue.inc"
#include "tokenconv/tokenconv.inc"
#include "tokenconv/tokenconv_f32.inc"
#include "sgemm/sgemm.inc"
#include "elementwise/elementwise.inc"

void xnor_dots(const uint64_t* A, int64_t lda, int64_t rows, const uint64_t* panels, int KW, int N,
               int K, int32_t* dots, int64_t ldd);  // bgemm/xnor_avx512.cpp
void ternary_dots(const uint64_t* S, const uint64_t* Z, int64_t lda, int64_t rows, const uint64_t* panels,
                  int KW, int N, int32_t* dots, int64_t ldd);  // bgemm/ternary_avx512.cpp
bool xnor_unit(const uint64_t* A, int64_t lda, int64_t rows, const uint64_t* panels, int KW, int K,
               const Epilogue& e);  // bgemm/unit_avx512.cpp

}  // namespace bimlp::kernels::avx512

namespace bimlp::kernels {

extern const Table kTable_avx512;
const Table kTable_avx512 = {
    "avx512",       avx512::xnor_dots, avx512::epilogue_rows, avx512::epilogue_rows_f32, avx512::tail_rows,
    avx512::token_conv, avx512::token_conv_f32,
    avx512::sgemm,  avx512::rprelu_rows, avx512::wave_rows, avx512::mix_rows, avx512::sum4_rows,
    avx512::pool_rows, avx512::ternary_dots, avx512::xnor_unit,
};

}  // namespace bimlp::kernels
