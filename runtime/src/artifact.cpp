#include "artifact.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "sha256.h"

namespace bimlp {

namespace {

[[noreturn]] void fail(const std::string& name, const std::string& what) { throw Error(name + ": " + what); }

const char* torch_dtype(const std::string& st) { return st == "U8" ? "torch.uint8" : "torch.float32"; }

// Python's repr of a shape tuple: (), (5,), (2, 3)
std::string tuple_repr(const std::vector<int64_t>& shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  if (shape.size() == 1) s += ",";
  return s + ")";
}

uint64_t json_u64(const std::string& name, const std::string& what, const Json& j) {
  if (j.kind != Json::Number || !j.integral || j.number < 0 || j.number > 9.0e15)
    fail(name, what + " is not a non-negative integer");
  return uint64_t(j.number);
}

}  // namespace

Artifact read_artifact(std::string name, std::vector<uint8_t> bytes) {
  Artifact a;
  a.name = std::move(name);
  a.bytes = std::move(bytes);
  const std::string& nm = a.name;
  const size_t size = a.bytes.size();
  if (size < 8) fail(nm, std::to_string(size) + " bytes, too short to be a .bimlp artifact (truncated?)");
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | a.bytes[size_t(i)];
  if (hlen > kMaxHeaderBytes) fail(nm, "safetensors header of " + std::to_string(hlen) + " bytes is implausibly large");
  if (8 + hlen > size)
    fail(nm, "header says " + std::to_string(hlen) + " bytes but the file has " + std::to_string(size) + ": truncated");
  Json st;
  try {
    st = parse_json(reinterpret_cast<const char*>(a.bytes.data()) + 8, size_t(hlen));
  } catch (const std::runtime_error& e) {
    fail(nm, std::string("not a safetensors file (") + e.what() + ")");
  }
  if (st.kind != Json::Object) fail(nm, "not a safetensors file (header is not a JSON object)");
  const Json* meta = st.find("__metadata__");
  if (!meta || meta->kind != Json::Object) fail(nm, "not a packed BiMLP artifact (no __metadata__ object)");
  for (const auto& kv : meta->fields)
    if (kv.second.kind != Json::String) fail(nm, "__metadata__ entry '" + kv.first + "' is not a string");
  auto meta_str = [&](const char* key) -> std::string {
    const Json* v = meta->find(key);
    return v ? v->text : std::string();
  };
  if (meta_str("bimlp_format") != kFormat)
    fail(nm, "not a packed BiMLP artifact (format '" + meta_str("bimlp_format") + "')");
  const std::string ver = meta_str("bimlp_format_version");
  for (int v = kMinVersion; v <= kMaxVersion; ++v)
    if (ver == std::to_string(v)) a.version = v;
  if (!a.version)
    fail(nm, "artifact version '" + ver + "', this runtime reads versions " + std::to_string(kMinVersion) + " to " +
                 std::to_string(kMaxVersion) + " (a newer bimlp wrote it? upgrade bimlp-runtime)");

  // tensors: dtype, shape and offsets, checked against the data section
  const uint8_t* data = a.bytes.data() + 8 + hlen;
  const uint64_t data_size = size - 8 - hlen;
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const auto& kv : st.fields) {
    if (kv.first == "__metadata__") continue;
    const std::string where = "tensor '" + kv.first + "'";
    const Json& t = kv.second;
    if (t.kind != Json::Object) fail(nm, where + ": entry is not an object");
    const Json* dt = t.find("dtype");
    const Json* sh = t.find("shape");
    const Json* off = t.find("data_offsets");
    if (!dt || dt->kind != Json::String || !sh || sh->kind != Json::Array || !off ||
        off->kind != Json::Array || off->items.size() != 2)
      fail(nm, where + ": needs dtype, shape and two data_offsets");
    if (dt->text != "U8" && dt->text != "F32") fail(nm, where + ": dtype " + dt->text + ", expected U8 or F32");
    if (sh->items.size() > 8) fail(nm, where + ": more than 8 dimensions");
    TensorView v;
    v.dtype = dt->text;
    uint64_t numel = 1;
    for (const Json& d : sh->items) {
      const uint64_t n = json_u64(nm, where + " shape entry", d);
      if (n > (1ull << 40) || (n && numel > (1ull << 62) / n)) fail(nm, where + ": shape too large");
      numel *= n;
      v.shape.push_back(int64_t(n));
    }
    const uint64_t item = v.dtype == "U8" ? 1 : 4;
    const uint64_t b0 = json_u64(nm, where + " data_offsets", off->items[0]);
    const uint64_t b1 = json_u64(nm, where + " data_offsets", off->items[1]);
    if (b1 < b0 || b1 > data_size)
      fail(nm, where + ": data [" + std::to_string(b0) + ", " + std::to_string(b1) + ") outside the " +
                   std::to_string(data_size) + " data bytes (truncated?)");
    if (b1 - b0 != numel * item)
      fail(nm, where + ": " + std::to_string(b1 - b0) + " data bytes for " + std::to_string(numel) +
                   " elements of " + v.dtype);
    v.data = data + b0;
    v.nbytes = size_t(b1 - b0);
    spans.emplace_back(b0, b1);
    a.tensors.emplace(kv.first, std::move(v));
  }
  std::sort(spans.begin(), spans.end());
  uint64_t pos = 0;
  for (const auto& s : spans) {
    if (s.first != pos) fail(nm, "tensor data overlaps or leaves gaps (not a valid safetensors file)");
    pos = s.second;
  }
  if (pos != data_size)
    fail(nm, std::to_string(data_size - pos) + " bytes after the last tensor (not a valid safetensors file)");

  // checksum of the header text and every tensor (name, dtype, shape, bytes) in name order
  const std::string header_text = meta_str("header");
  Sha256 h;
  h.update(header_text);
  for (const auto& kv : a.tensors) {  // std::map: sorted by name, as Python's sorted()
    std::string pre;
    pre += '\0';
    pre += kv.first;
    pre += '\0';
    pre += torch_dtype(kv.second.dtype);
    pre += '\0';
    pre += tuple_repr(kv.second.shape);
    pre += '\0';
    h.update(pre);
    h.update(kv.second.data, kv.second.nbytes);
  }
  if (h.hexdigest() != meta_str("sha256"))
    fail(nm, "checksum mismatch: the file was modified or damaged after export");
  try {
    a.header = parse_json(header_text.data(), header_text.size());
  } catch (const std::runtime_error& e) {
    fail(nm, std::string("model header is not valid JSON (") + e.what() + ")");
  }
  if (a.header.kind != Json::Object) fail(nm, "model header is not a JSON object");
  return a;
}

Artifact read_artifact_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail(path, "cannot open (no such file or not readable)");
  std::vector<uint8_t> bytes;
  if (std::fseek(f, 0, SEEK_END) == 0) {
    const long n = std::ftell(f);
    if (n > 0) bytes.reserve(size_t(n));
    std::fseek(f, 0, SEEK_SET);
  }
  uint8_t buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) bytes.insert(bytes.end(), buf, buf + got);
  const bool err = std::ferror(f);
  std::fclose(f);
  if (err) fail(path, "read error");
  return read_artifact(path, std::move(bytes));
}

}  // namespace bimlp
