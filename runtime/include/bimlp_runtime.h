/* bimlp_runtime.h -- C API of the standalone 1-bit BiMLP runtime.
 *
 * Loads a .bimlp artifact (written by `bimlp export`) and runs the whole network natively:
 * float32 images (B, C, H, W) in, logits (B, classes) out. Every function returns 0 on success
 * and a nonzero BIMLP_E* code on failure; bimlp_last_error() then describes the failure (per
 * calling thread). A loaded model may be run from several threads at once.
 */
#ifndef BIMLP_RUNTIME_H
#define BIMLP_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define BIMLP_API __declspec(dllexport)
#else
#define BIMLP_API __attribute__((visibility("default")))
#endif

#define BIMLP_RUNTIME_VERSION "0.1.0"

enum {
  BIMLP_OK = 0,
  BIMLP_EINVAL = 1,    /* a bad argument (null pointer, wrong shape, out of range) */
  BIMLP_EARTIFACT = 2, /* a missing, truncated, tampered or incompatible artifact */
  BIMLP_ENOMEM = 3,    /* out of memory */
  BIMLP_EINTERNAL = 4
};

typedef struct bimlp_model bimlp_model;

/* Load from a file / from memory (the bytes are copied). threads <= 0: all hardware threads. */
BIMLP_API int bimlp_load(const char* path, int threads, bimlp_model** out);
BIMLP_API int bimlp_load_buffer(const void* data, size_t size, const char* name, int threads, bimlp_model** out);
BIMLP_API void bimlp_free(bimlp_model* model);

/* Shapes: the input is (batch, in_channels, height, width), the output (batch, num_classes). */
BIMLP_API int bimlp_in_channels(const bimlp_model* model);
BIMLP_API int bimlp_num_classes(const bimlp_model* model);
/* The output shape for an input shape; fails for inputs the model cannot take. */
BIMLP_API int bimlp_output_shape(const bimlp_model* model, const int64_t input_shape[4], int64_t output_shape[2]);

/* input: input_shape[0..3] floats, C-contiguous; output: output_size floats (>= B * classes). */
BIMLP_API int bimlp_run(const bimlp_model* model, const float* input, const int64_t input_shape[4], float* output,
              size_t output_size);

/* As bimlp_run, also adding each step's seconds (thread 0's view) to times[0 .. bimlp_num_steps). */
BIMLP_API int bimlp_run_profiled(const bimlp_model* model, const float* input, const int64_t input_shape[4],
                       float* output, size_t output_size, double* times, size_t times_size);
BIMLP_API int bimlp_num_steps(const bimlp_model* model);
BIMLP_API const char* bimlp_step_name(const bimlp_model* model, int index); /* NULL when out of range */

BIMLP_API int bimlp_threads(const bimlp_model* model);
BIMLP_API int bimlp_set_threads(bimlp_model* model, int threads); /* threads <= 0: all hardware threads */
BIMLP_API const char* bimlp_isa(const bimlp_model* model);        /* "avx512", "avx2", "neon" or "portable" */

/* The last error of the calling thread ("" when none). */
BIMLP_API const char* bimlp_last_error(void);
BIMLP_API const char* bimlp_version(void);

#ifdef __cplusplus
}
#endif

#endif /* BIMLP_RUNTIME_H */
