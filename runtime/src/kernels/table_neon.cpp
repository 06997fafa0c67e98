// The neon dispatch table (aarch64): the shared epilogue, float GEMM and element-wise kernels
// compiled for Advanced SIMD, with NEON sign packing, token convs and XNOR-popcount dot products.
#include <arm_neon.h>

#include "kernels.h"
#include "bitpack/bitpack_neon.h"

namespace bimlp::kernels::neon {

constexpr int SGEMM_MR = 3;  // float GEMM accumulator rows that fit in this ISA's registers
constexpr int SGEMM_PP = 1;  // float GEMM weight panels per tile

#include "epilogue/epilogue.inc"
#include "tokenconv/tokenconv_neon.inc"
#include "tokenconv/tokenconv_f32.inc"
#include "sgemm/sgemm.inc"
#include "elementwise/elementwise.inc"

void xnor_dots(const uint64_t* A, int64_t lda, int64_t rows, const uint64_t* panels, int KW, int N,
               int K, int32_t* dots, int64_t ldd);  // bgemm/xnor_neon.cpp
void ternary_dots(const uint64_t* S, const uint64_t* Z, int64_t lda, int64_t rows, const uint64_t* panels,
                  int KW, int N, int32_t* dots, int64_t ldd);  // bgemm/ternary_neon.cpp
bool xnor_unit(const uint64_t* A, int64_t lda, int64_t rows, const uint64_t* panels, int KW, int K,
               const Epilogue& e);  // bgemm/unit_neon.cpp

}  // namespace bimlp::kernels::neon

namespace bimlp::kernels {

extern const Table kTable_neon;
const Table kTable_neon = {
    "neon",       neon::xnor_dots, neon::epilogue_rows, neon::epilogue_rows_f32, neon::tail_rows,
    neon::token_conv, neon::token_conv_f32,
    neon::sgemm,  neon::rprelu_rows, neon::wave_rows, neon::mix_rows, neon::sum4_rows,
    neon::pool_rows, neon::ternary_dots, neon::xnor_unit,
};

}  // namespace bimlp::kernels
