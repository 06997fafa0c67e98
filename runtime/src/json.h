// A strict, bounded JSON reader for artifact headers (RFC 8259 values; no comments, no trailing
// commas, no NaN). Nesting deeper than kMaxDepth, duplicate object keys, invalid UTF-8 escapes and
// trailing bytes are errors, so a hostile header cannot exhaust the stack or be read two ways.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace bimlp {

struct Json {
  enum Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Null;
  bool boolean = false;
  double number = 0.0;
  bool integral = false;  // the number was written without fraction or exponent
  std::string text;
  std::vector<Json> items;
  std::map<std::string, Json> fields;

  const Json* find(const std::string& key) const;  // null when absent or not an object
};

constexpr int kMaxJsonDepth = 64;

// Parses `data` completely; throws std::runtime_error("...at byte N") on any deviation.
Json parse_json(const char* data, size_t size);

const char* json_kind_name(Json::Kind k);

}  // namespace bimlp
