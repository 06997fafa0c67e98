// The portable dispatch table: the shared kernels compiled for this instruction set (CMake sets the
// target flags of this file), with its own sign packing and XNOR-popcount dot products.
#include "kernels.h"
#include "bitpack/bitpack_portable.h"

namespace bimlp::kernels::portable {

constexpr int SGEMM_MR = 1;  // float GEMM accumulator rows that fit in this ISA's registers
constexpr int SGEMM_PP = 1;  // float GEMM weight panels per tile
constexpr int TOKEN_CHUNK = 16;  // int8 lanes of one vector register (SSE2 / Advanced SIMD)

#include "epilogue/epilogue.inc"
#include "tokenconv/tokenconv.inc"
#include "tokenconv/tokenconv_f32.inc"
#include "sgemm/sgemm.inc"
#include "elementwise/elementwise.inc"

void xnor_dots(const uint64_t* A, int64_t lda, int64_t rows, const uint64_t* panels, int KW, int N,
               int K, int32_t* dots, int64_t ldd);  // bgemm/xnor_portable.cpp
void ternary_dots(const uint64_t* S, const uint64_t* Z, int64_t lda, int64_t rows, const uint64_t* panels,
                  int KW, int N, int32_t* dots, int64_t ldd);  // bgemm/ternary_portable.cpp

}  // namespace bimlp::kernels::portable

namespace bimlp::kernels {

extern const Table kTable_portable;
const Table kTable_portable = {
    "portable",       portable::xnor_dots, portable::epilogue_rows, portable::epilogue_rows_f32, portable::tail_rows,
    portable::token_conv, portable::token_conv_f32,
    portable::sgemm,  portable::rprelu_rows, portable::wave_rows, portable::mix_rows, portable::sum4_rows,
    portable::pool_rows, portable::ternary_dots, nullptr,
};

}  // namespace bimlp::kernels
