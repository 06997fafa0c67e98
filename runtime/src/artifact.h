// Reading a .bimlp artifact: a safetensors file (8-byte little-endian header length, JSON header,
// tensor bytes) whose metadata names the format and version, carries the model header (JSON with
// the configuration) and the sha256 of the header text and every tensor. Everything is checked
// before use: lengths and offsets against the file, dtypes, shapes, the checksum.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "json.h"

namespace bimlp {

// An error in an artifact or an argument; the message names the file and the tensor or field.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A bad argument to a call (input shape, sizes), not a problem of the artifact.
struct ArgError : Error {
  using Error::Error;
};

struct TensorView {
  std::string dtype;  // safetensors dtype: U8 or F32
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
};

struct Artifact {
  std::string name;  // file name (or "<buffer>") used in every error message
  std::vector<uint8_t> bytes;
  std::map<std::string, TensorView> tensors;
  Json header;  // the model header: {"format", "version", "config", ...}
  int version = 0;  // format version (1 or 2)
};

constexpr const char* kFormat = "bimlp-packed";
// Version 2 adds the header's "numerics" (paper | official, equal to the configuration's mode),
// official-mode tensors and downsample "wavemlp"; version 1 files are paper-mode BiMLPs.
constexpr int kMinVersion = 1, kMaxVersion = 2;
constexpr uint64_t kMaxHeaderBytes = 64ull << 20;

// Parses and verifies `bytes` (moved into the result). Throws Error.
Artifact read_artifact(std::string name, std::vector<uint8_t> bytes);
Artifact read_artifact_file(const std::string& path);

}  // namespace bimlp
