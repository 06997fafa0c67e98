#include "json.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

namespace bimlp {

const Json* Json::find(const std::string& key) const {
  if (kind != Object) return nullptr;
  auto it = fields.find(key);
  return it == fields.end() ? nullptr : &it->second;
}

const char* json_kind_name(Json::Kind k) {
  switch (k) {
    case Json::Null: return "null";
    case Json::Bool: return "a boolean";
    case Json::Number: return "a number";
    case Json::String: return "a string";
    case Json::Array: return "an array";
    case Json::Object: return "an object";
  }
  return "?";
}

namespace {

struct Parser {
  const char* p;
  const char* begin;
  const char* end;

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("invalid JSON: " + what + " at byte " + std::to_string(p - begin));
  }
  void ws() {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
  }
  bool literal(const char* word) {
    const size_t n = std::strlen(word);
    if (size_t(end - p) >= n && std::memcmp(p, word, n) == 0) {
      p += n;
      return true;
    }
    return false;
  }
  static void put_utf8(std::string& s, uint32_t cp) {
    if (cp < 0x80) {
      s += char(cp);
    } else if (cp < 0x800) {
      s += char(0xC0 | (cp >> 6));
      s += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += char(0xE0 | (cp >> 12));
      s += char(0x80 | ((cp >> 6) & 0x3F));
      s += char(0x80 | (cp & 0x3F));
    } else {
      s += char(0xF0 | (cp >> 18));
      s += char(0x80 | ((cp >> 12) & 0x3F));
      s += char(0x80 | ((cp >> 6) & 0x3F));
      s += char(0x80 | (cp & 0x3F));
    }
  }
  uint32_t hex4() {
    if (end - p < 4) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i, ++p) {
      const char c = *p;
      v <<= 4;
      if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
      else fail("bad hex digit in \\u escape");
    }
    return v;
  }
  std::string string() {
    if (p >= end || *p != '"') fail("expected a string");
    ++p;
    std::string s;
    while (true) {
      if (p >= end) fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(*p);
      if (c == '"') {
        ++p;
        return s;
      }
      if (c < 0x20) fail("control character in string");
      if (c != '\\') {
        s += char(c);
        ++p;
        continue;
      }
      ++p;
      if (p >= end) fail("unterminated escape");
      const char e = *p++;
      switch (e) {
        case '"': s += '"'; break;
        case '\\': s += '\\'; break;
        case '/': s += '/'; break;
        case 'b': s += '\b'; break;
        case 'f': s += '\f'; break;
        case 'n': s += '\n'; break;
        case 'r': s += '\r'; break;
        case 't': s += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {
            if (end - p < 2 || p[0] != '\\' || p[1] != 'u') fail("lone high surrogate");
            p += 2;
            const uint32_t lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) fail("bad low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            fail("lone low surrogate");
          }
          put_utf8(s, cp);
          break;
        }
        default: fail("unknown escape");
      }
    }
  }
  Json number() {
    const char* s = p;
    bool integral = true;
    if (p < end && *p == '-') ++p;
    if (p >= end) fail("truncated number");
    if (*p == '0') {
      ++p;
    } else if (*p >= '1' && *p <= '9') {
      while (p < end && *p >= '0' && *p <= '9') ++p;
    } else {
      fail("bad number");
    }
    if (p < end && *p == '.') {
      integral = false;
      ++p;
      if (p >= end || *p < '0' || *p > '9') fail("bad fraction");
      while (p < end && *p >= '0' && *p <= '9') ++p;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
      integral = false;
      ++p;
      if (p < end && (*p == '+' || *p == '-')) ++p;
      if (p >= end || *p < '0' || *p > '9') fail("bad exponent");
      while (p < end && *p >= '0' && *p <= '9') ++p;
    }
    if (p - s > 64) fail("number too long");
    char buf[72];
    std::memcpy(buf, s, size_t(p - s));
    buf[p - s] = 0;
    Json j;
    j.kind = Json::Number;
    j.number = std::strtod(buf, nullptr);
    j.integral = integral;
    if (!std::isfinite(j.number)) fail("number out of range");
    return j;
  }
  Json value(int depth) {
    if (depth > kMaxJsonDepth) fail("nesting deeper than " + std::to_string(kMaxJsonDepth));
    ws();
    if (p >= end) fail("unexpected end");
    Json j;
    const char c = *p;
    if (c == '{') {
      ++p;
      j.kind = Json::Object;
      ws();
      if (p < end && *p == '}') {
        ++p;
        return j;
      }
      while (true) {
        ws();
        std::string key = string();
        ws();
        if (p >= end || *p != ':') fail("expected ':'");
        ++p;
        Json v = value(depth + 1);
        if (!j.fields.emplace(std::move(key), std::move(v)).second) fail("duplicate key");
        ws();
        if (p < end && *p == ',') {
          ++p;
          continue;
        }
        if (p < end && *p == '}') {
          ++p;
          return j;
        }
        fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      ++p;
      j.kind = Json::Array;
      ws();
      if (p < end && *p == ']') {
        ++p;
        return j;
      }
      while (true) {
        j.items.push_back(value(depth + 1));
        ws();
        if (p < end && *p == ',') {
          ++p;
          continue;
        }
        if (p < end && *p == ']') {
          ++p;
          return j;
        }
        fail("expected ',' or ']'");
      }
    }
    if (c == '"') {
      j.kind = Json::String;
      j.text = string();
      return j;
    }
    if (literal("true")) {
      j.kind = Json::Bool;
      j.boolean = true;
      return j;
    }
    if (literal("false")) {
      j.kind = Json::Bool;
      return j;
    }
    if (literal("null")) return j;
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    fail("unexpected character");
  }
};

}  // namespace

Json parse_json(const char* data, size_t size) {
  Parser ps{data, data, data + size};
  Json j = ps.value(0);
  ps.ws();
  if (ps.p != ps.end) ps.fail("trailing characters");
  return j;
}

}  // namespace bimlp
