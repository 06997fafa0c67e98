// The per-call workspace of the executor (see forward.cpp).
#pragma once

#include <cstdint>
#include <vector>

namespace bimlp {

struct StageShape {
  int64_t H, W, M, C;
};

struct Arena {
  int64_t B = -1, H = -1, W = -1;
  int T = 0;
  std::vector<StageShape> shapes;
  std::vector<uint8_t> mem;
  float *x = nullptr, *x2 = nullptr, *ds = nullptr, *z = nullptr, *pm_h = nullptr, *pm_w = nullptr,
        *cc = nullptr, *hh = nullptr, *ww = nullptr, *g = nullptr, *rwh = nullptr, *rwo = nullptr,
        *a3 = nullptr, *gn_ss = nullptr, *pooled = nullptr;
  int8_t *planes_h = nullptr, *planes_w = nullptr, *planes1 = nullptr;
  uint64_t *front = nullptr, *mlpbits = nullptr, *gbits = nullptr, *rwhbits = nullptr;
  double *rowsum = nullptr, *rowstat = nullptr;
  struct Thread {
    float* f;      // general float scratch
    float* epi;    // epilogue scratch (2 * Nmax)
    int32_t* i;
    int8_t* b;
    uint64_t* u;
  };
  std::vector<Thread> th;
};

}  // namespace bimlp
