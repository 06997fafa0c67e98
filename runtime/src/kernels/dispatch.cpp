// Instruction-set selection: one table per instruction set, chosen once when a model is loaded.
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels.h"

namespace bimlp::kernels {

extern const Table kTable_portable;
#if defined(BIMLP_HAVE_X86_KERNELS)
extern const Table kTable_avx2;
extern const Table kTable_avx512;
#endif
#if defined(BIMLP_HAVE_NEON_KERNELS)
extern const Table kTable_neon;
#endif

const char* isa_name(int isa) {
  switch (isa) {
    case ISA_PORTABLE: return "portable";
    case ISA_AVX2: return "avx2";
    case ISA_AVX512: return "avx512";
    case ISA_NEON: return "neon";
  }
  return "unknown";
}

bool isa_supported(int isa) {
  if (isa == ISA_PORTABLE) return true;
#if defined(BIMLP_HAVE_X86_KERNELS)
  __builtin_cpu_init();
  if (isa == ISA_AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("popcnt");
  if (isa == ISA_AVX512)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx512vpopcntdq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
#endif
#if defined(BIMLP_HAVE_NEON_KERNELS)
  if (isa == ISA_NEON) return true;  // Advanced SIMD is part of every aarch64 CPU
#endif
  return false;
}

const Table& table_for(int isa) {
  if (!isa_supported(isa))
    throw std::runtime_error(std::string("instruction set ") + isa_name(isa) +
                             " is not supported by this CPU or this build");
#if defined(BIMLP_HAVE_X86_KERNELS)
  if (isa == ISA_AVX512) return kTable_avx512;
  if (isa == ISA_AVX2) return kTable_avx2;
#endif
#if defined(BIMLP_HAVE_NEON_KERNELS)
  if (isa == ISA_NEON) return kTable_neon;
#endif
  return kTable_portable;
}

const Table& select_table(int* isa_out) {
  int isa = -1;
  const char* env = std::getenv("BIMLP_ISA");
  if (env && *env) {
    const std::string s(env);
    for (int i = 0; i < ISA_COUNT; ++i)
      if (s == isa_name(i)) isa = i;
    if (isa < 0)
      throw std::runtime_error("BIMLP_ISA=" + s + " is not an instruction set; use portable, avx2, avx512 or neon");
  } else {
    isa = isa_supported(ISA_AVX512) ? ISA_AVX512
          : isa_supported(ISA_AVX2) ? ISA_AVX2
          : isa_supported(ISA_NEON) ? ISA_NEON
                                    : ISA_PORTABLE;
  }
  const Table& t = table_for(isa);
  if (isa_out) *isa_out = isa;
  return t;
}

}  // namespace bimlp::kernels
