/* run_model.c -- the smallest complete use of the C API.
 *
 *   cc run_model.c -I<include dir> -L<lib dir> -lbimlp_runtime -o run_model
 *   ./run_model MODEL.bimlp [SIZE] [THREADS]
 *
 * Runs the model once on a deterministic test image (batch 1, SIZE x SIZE, default 224: pixel i
 * is ((i * 2654435761) mod 2^32 mod 1000) / 500 - 1) and prints the top-5 classes and logits.
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bimlp_runtime.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL.bimlp [SIZE] [THREADS]\n", argv[0]);
    return 2;
  }
  const int64_t size = argc > 2 ? atoll(argv[2]) : 224;
  const int threads = argc > 3 ? atoi(argv[3]) : 0;
  bimlp_model* model = NULL;
  if (bimlp_load(argv[1], threads, &model) != BIMLP_OK) {
    fprintf(stderr, "error: %s\n", bimlp_last_error());
    return 1;
  }
  const int64_t shape[4] = {1, bimlp_in_channels(model), size, size};
  int64_t out_shape[2];
  if (bimlp_output_shape(model, shape, out_shape) != BIMLP_OK) {
    fprintf(stderr, "error: %s\n", bimlp_last_error());
    bimlp_free(model);
    return 1;
  }
  const size_t n = (size_t)(shape[0] * shape[1] * shape[2] * shape[3]);
  const size_t classes = (size_t)out_shape[1];
  float* x = malloc(n * sizeof(float));
  float* logits = malloc(classes * sizeof(float));
  if (!x || !logits) return 1;
  for (size_t i = 0; i < n; ++i) x[i] = (float)((unsigned)((uint32_t)i * 2654435761u) % 1000u) / 500.0f - 1.0f;

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  const int rc = bimlp_run(model, x, shape, logits, classes);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (rc != BIMLP_OK) {
    fprintf(stderr, "error: %s\n", bimlp_last_error());
    return 1;
  }
  printf("model %s: %lld classes, isa %s, %d threads, %.2f ms\n", argv[1], (long long)classes, bimlp_isa(model),
         bimlp_threads(model), (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
  for (int k = 0; k < 5 && k < (int)classes; ++k) { /* top-5 by selection */
    size_t best = 0;
    for (size_t c = 1; c < classes; ++c)
      if (logits[c] > logits[best]) best = c;
    printf("top%d class %zu logit %.6f\n", k + 1, best, logits[best]);
    logits[best] = -1e30f;
  }
  free(x);
  free(logits);
  bimlp_free(model);
  return 0;
}
