// Tests of data/base64.cpp, data/sha256.cpp and data/utf8.cpp against published vectors
// (RFC 4648 section 10, FIPS 180-4 examples) and hand-made UTF-8 cases.
#include <gtest/gtest.h>

#include "data/base64.h"
#include "data/sha256.h"
#include "data/utf8.h"

namespace k2f::data {
namespace {

TEST(Base64, Rfc4648Vectors) {
  const std::vector<std::pair<std::string, std::string>> vectors = {
      {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(plain), encoded);
    EXPECT_EQ(base64_decode(encoded).value_or("<none>"), plain);
  }
  EXPECT_EQ(base64_decode("/w==").value_or(""), std::string("\xff"));
}

TEST(Base64, RejectsNonCanonicalInput) {
  for (const char* bad : {"", "Zg", "Zg=", "Z===", "Zh==", "Zm9v!A==", "=Zm9", "Zm=v"})
    EXPECT_FALSE(base64_decode(bad).has_value()) << bad;
}

TEST(Sha256, FipsVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Utf8, FindsTheFirstInvalidByte) {
  EXPECT_EQ(find_invalid_utf8("plain ascii"), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("é日🙂"), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("ab\xff"), 2u);
  EXPECT_EQ(find_invalid_utf8("a\xc0\x80"), 1u);          // overlong NUL
  EXPECT_EQ(find_invalid_utf8("\xed\xa0\x80"), 0u);        // surrogate U+D800
  EXPECT_EQ(find_invalid_utf8("xy\xe6\x97"), 2u);          // truncated sequence
  EXPECT_EQ(find_invalid_utf8("\xf4\x90\x80\x80"), 0u);    // above U+10FFFF
}

}  // namespace
}  // namespace k2f::data
