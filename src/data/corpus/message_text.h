// Input text quoted inside an error message. Records are arbitrary bytes (a field value, a byte
// the JSON scanner did not expect, the text nlohmann-json last read); an error must stay one
// short line, so the excerpt is bounded and control bytes and invalid UTF-8 are escaped (\n,
// \xHH), while valid UTF-8 (Chinese text, say) is kept as it is.
#pragma once
#include <cstdio>
#include <string>
#include <string_view>

namespace cs {

// At most about MAX_BYTES of S, its head (or its tail when TAIL, where a parse error sits), with
// "..." marking what was cut.
inline std::string message_excerpt(std::string_view s, size_t max_bytes = 60, bool tail = false) {
  const bool cut = s.size() > max_bytes;
  if (cut) {
    size_t from = tail ? s.size() - max_bytes : 0;
    // Start on a character: skip UTF-8 continuation bytes rather than escape half a character.
    while (tail && from < s.size() && (static_cast<unsigned char>(s[from]) & 0xC0) == 0x80) ++from;
    s = s.substr(from, tail ? std::string_view::npos : max_bytes);
  }
  std::string out = cut && tail ? "..." : "";
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    // The length of a well-formed UTF-8 sequence starting here (RFC 3629), 0 if none.
    size_t n = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (n > 1) {
      if (i + n > s.size()) n = 0;
      for (size_t k = 1; k < n; ++k)
        if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) n = 0;
      const auto c1 = n ? static_cast<unsigned char>(s[i + 1]) : 0;
      if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 > 0x9F) || (c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 > 0x8F))
        n = 0;  // overlong, surrogate or above U+10FFFF
    }
    if (n > 1) {
      out.append(s.substr(i, n));
      i += n;
      continue;
    }
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c >= 0x20 && c < 0x7F) {
      out += char(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      out += hex;
    }
    ++i;
  }
  if (cut && !tail) out += "...";
  return out;
}

}  // namespace cs
