// The per-call workspace of the executor (see forward.cpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#endif

namespace bimlp {

// The barrier between the passes of one call: a short spin, then yielding the CPU, so that on a
// machine with more runnable threads than cores a waiting thread gives its core to the one that
// is still working (OpenMP's default barrier spins for a long time and can stall a 2-thread call
// by a scheduler time slice per pass). Release/acquire ordering makes every write before wait()
// visible to every thread after it.
struct Barrier {
  std::atomic<int> count{0};
  std::atomic<int> generation{0};
  int n = 1;
  void wait() {
    if (n <= 1) return;
    const int g = generation.load(std::memory_order_acquire);
    if (count.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      count.store(0, std::memory_order_relaxed);
      generation.fetch_add(1, std::memory_order_release);
      return;
    }
    for (int i = 0; generation.load(std::memory_order_acquire) == g; ++i) {
      if (i < 4000) {
#if defined(__x86_64__) || defined(_M_X64)
        _mm_pause();
#endif
      } else {
        std::this_thread::yield();
      }
    }
  }
};

// Denormal floats flushed to zero on this thread for the lifetime of the guard (x86: MXCSR FTZ and
// DAZ; aarch64: FPCR.FZ), the previous mode restored after. Inference engines run this way: an
// operation on a denormal costs a microcode assist of ~100 cycles on x86 (the PATM mix of a
// random-weight BiMLP-S at 224 ran 1.7x slower without it), and a value below 1.2e-38 changes no
// logit. Every instruction set of a build runs under the same mode, so they stay bit-identical.
struct FlushDenormals {
#if defined(__x86_64__) || defined(_M_X64)
  unsigned saved = _mm_getcsr();
  FlushDenormals() { _mm_setcsr(saved | 0x8040u); }  // FTZ (bit 15) | DAZ (bit 6)
  ~FlushDenormals() { _mm_setcsr(saved); }
#elif defined(__aarch64__)
  uint64_t saved = read();
  static uint64_t read() {
    uint64_t v;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(v));
    return v;
  }
  static void write(uint64_t v) { __asm__ __volatile__("msr fpcr, %0" : : "r"(v)); }
  FlushDenormals() { write(saved | (uint64_t(1) << 24)); }  // FZ
  ~FlushDenormals() { write(saved); }
#endif
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;
};

struct StageShape {
  int64_t H, W, M, C;
};

struct Arena {
  int64_t B = -1, H = -1, W = -1;
  int T = 0;
  std::vector<StageShape> shapes;
  std::vector<uint8_t> mem;
  Barrier barrier;
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
    float* fd;     // official mode's float token-conv dots (W * C + 2C), else null
  };
  std::vector<Thread> th;
};

}  // namespace bimlp
