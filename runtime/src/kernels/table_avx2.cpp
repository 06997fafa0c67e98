// The avx2 dispatch table: the shared kernels compiled for this instruction set (CMake sets the
// target flags of this file), with its own sign packing and XNOR-popcount dot products.
#include "kernels.h"
#include "bitpack/bitpack_avx2.h"

namespace bimlp::kernels::avx2 {

constexpr int SGEMM_MR = 3;  // float GEMM accumulator rows that fit in this ISA's registers
constexpr int SGEMM_PP = 1;  // float GEMM weight panels per tile
constexpr int TOKEN_CHUNK = 32;  // int8 lanes of one vector register (ymm)

#include "epilogue/epilogue.inc"
#include "tokenconv/tokenconv.inc"
#include "tokenconv/tokenconv_f32.inc"
#include "sgemm/sgemm.inc"
#include "elementwise/elementwise.inc"

void xnor_dots(const uint64_t* A, int64_t lda, int64_t rows, const uint64_t* panels, int KW, int N,
               int K, int32_t* dots, int64_t ldd);  // bgemm/xnor_avx2.cpp
void ternary_dots(const uint64_t* S, const uint64_t* Z, int64_t lda, int64_t rows, const uint64_t* panels,
                  int KW, int N, int32_t* dots, int64_t ldd);  // bgemm/ternary_avx2.cpp
bool xnor_unit(const uint64_t* A, int64_t lda, int64_t rows, const uint64_t* panels, int KW, int K,
               const Epilogue& e);  // bgemm/unit_avx2.cpp

}  // namespace bimlp::kernels::avx2

namespace bimlp::kernels {

extern const Table kTable_avx2;
const Table kTable_avx2 = {
    "avx2",       avx2::xnor_dots, avx2::epilogue_rows, avx2::epilogue_rows_f32, avx2::tail_rows,
    avx2::token_conv, avx2::token_conv_f32,
    avx2::sgemm,  avx2::rprelu_rows, avx2::wave_rows, avx2::mix_rows, avx2::sum4_rows,
    avx2::pool_rows, avx2::ternary_dots, avx2::xnor_unit,
};

}  // namespace bimlp::kernels
