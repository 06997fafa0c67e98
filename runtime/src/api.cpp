// The C API: argument checks, exceptions turned into error codes and a per-thread message.
#include "bimlp_runtime.h"

#include <new>
#include <string>
#include <thread>

#include "model.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

struct bimlp_model {
  std::unique_ptr<bimlp::Model> model;
};

namespace {

thread_local std::string g_error;

int set_error(int code, const std::string& what) {
  g_error = what;
  return code;
}

int default_threads() {
#if defined(_OPENMP)
  const int n = omp_get_max_threads();
#else
  const int n = int(std::thread::hardware_concurrency());
#endif
  return n > 0 ? n : 1;
}

int clamp_threads(int t) {
  if (t <= 0) return default_threads();
  return t > 256 ? 256 : t;
}

template <class F>
int guarded(F&& f) {
  try {
    f();
    g_error.clear();
    return BIMLP_OK;
  } catch (const bimlp::ArgError& e) {
    return set_error(BIMLP_EINVAL, e.what());
  } catch (const bimlp::Error& e) {
    return set_error(BIMLP_EARTIFACT, e.what());
  } catch (const std::bad_alloc&) {
    return set_error(BIMLP_ENOMEM, "out of memory");
  } catch (const std::exception& e) {
    return set_error(BIMLP_EINTERNAL, e.what());
  } catch (...) {
    return set_error(BIMLP_EINTERNAL, "unknown error");
  }
}

int make_model(bimlp::Artifact art, int threads, bimlp_model** out) {
  int isa = 0;
  const bimlp::kernels::Table* table = nullptr;
  try {
    table = &bimlp::kernels::select_table(&isa);
  } catch (const std::runtime_error& e) {
    throw bimlp::ArgError(e.what());
  }
  auto m = std::make_unique<bimlp_model>();
  m->model = std::make_unique<bimlp::Model>(art, clamp_threads(threads), *table, isa);
  *out = m.release();
  return 0;
}

int check_shape(const bimlp_model* model, const int64_t* shape) {
  if (!model) return set_error(BIMLP_EINVAL, "model is NULL");
  if (!shape) return set_error(BIMLP_EINVAL, "input_shape is NULL");
  try {
    model->model->check_input(shape[0], shape[1], shape[2], shape[3]);
  } catch (const bimlp::Error& e) {
    return set_error(BIMLP_EINVAL, e.what());
  }
  return 0;
}

int run_impl(const bimlp_model* model, const float* input, const int64_t* shape, float* output, size_t output_size,
             double* times, size_t times_size) {
  if (int rc = check_shape(model, shape)) return rc;
  if (!input) return set_error(BIMLP_EINVAL, "input is NULL");
  if (!output) return set_error(BIMLP_EINVAL, "output is NULL");
  const uint64_t need = uint64_t(shape[0]) * uint64_t(model->model->config().num_classes);
  if (output_size < need)
    return set_error(BIMLP_EINVAL, "output holds " + std::to_string(output_size) + " floats, the result needs " +
                                       std::to_string(need));
  if (times && times_size < model->model->step_names().size())
    return set_error(BIMLP_EINVAL, "times holds " + std::to_string(times_size) + " entries, the model has " +
                                       std::to_string(model->model->step_names().size()) + " steps");
  return guarded([&] { model->model->run(input, shape[0], shape[2], shape[3], output, times); });
}

}  // namespace

extern "C" {

int bimlp_testing_set_error(const char* msg) { return set_error(BIMLP_EINVAL, msg ? msg : "error"); }

int bimlp_load(const char* path, int threads, bimlp_model** out) {
  if (!out) return set_error(BIMLP_EINVAL, "out is NULL");
  *out = nullptr;
  if (!path) return set_error(BIMLP_EINVAL, "path is NULL");
  return guarded([&] { make_model(bimlp::read_artifact_file(path), threads, out); });
}

int bimlp_load_buffer(const void* data, size_t size, const char* name, int threads, bimlp_model** out) {
  if (!out) return set_error(BIMLP_EINVAL, "out is NULL");
  *out = nullptr;
  if (!data && size) return set_error(BIMLP_EINVAL, "data is NULL");
  return guarded([&] {
    const uint8_t* p = static_cast<const uint8_t*>(data);
    make_model(bimlp::read_artifact(name ? name : "<buffer>", std::vector<uint8_t>(p, p + size)), threads, out);
  });
}

void bimlp_free(bimlp_model* model) { delete model; }

int bimlp_in_channels(const bimlp_model* model) { return model ? model->model->config().in_chans : -1; }
int bimlp_num_classes(const bimlp_model* model) { return model ? model->model->config().num_classes : -1; }

int bimlp_output_shape(const bimlp_model* model, const int64_t input_shape[4], int64_t output_shape[2]) {
  if (int rc = check_shape(model, input_shape)) return rc;
  if (!output_shape) return set_error(BIMLP_EINVAL, "output_shape is NULL");
  output_shape[0] = input_shape[0];
  output_shape[1] = model->model->config().num_classes;
  return 0;
}

int bimlp_run(const bimlp_model* model, const float* input, const int64_t input_shape[4], float* output,
              size_t output_size) {
  return run_impl(model, input, input_shape, output, output_size, nullptr, 0);
}

int bimlp_run_profiled(const bimlp_model* model, const float* input, const int64_t input_shape[4], float* output,
                       size_t output_size, double* times, size_t times_size) {
  if (!times) return set_error(BIMLP_EINVAL, "times is NULL");
  return run_impl(model, input, input_shape, output, output_size, times, times_size);
}

int bimlp_num_steps(const bimlp_model* model) { return model ? int(model->model->step_names().size()) : -1; }

const char* bimlp_step_name(const bimlp_model* model, int index) {
  if (!model || index < 0 || size_t(index) >= model->model->step_names().size()) return nullptr;
  return model->model->step_names()[size_t(index)].c_str();
}

int bimlp_threads(const bimlp_model* model) { return model ? model->model->threads() : -1; }

int bimlp_set_threads(bimlp_model* model, int threads) {
  if (!model) return set_error(BIMLP_EINVAL, "model is NULL");
  model->model->set_threads(clamp_threads(threads));
  return 0;
}

const char* bimlp_isa(const bimlp_model* model) { return model ? model->model->isa_name() : "none"; }
const char* bimlp_last_error(void) { return g_error.c_str(); }
const char* bimlp_version(void) { return BIMLP_RUNTIME_VERSION; }

}  // extern "C"
