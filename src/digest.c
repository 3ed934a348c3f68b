/* SHA-256 (FIPS 180-4). Cache keys hold a digest of the credentials, so a
 * shared cache can tell apps apart by their secret while no key reveals
 * it. Small and dependency-free: libcurl's TLS library is not ours to
 * link against. */
#include "digest.h"

#include <stdio.h>
#include <string.h>

static const unsigned int K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void compress(spotify_sha256 *s) {
  unsigned int w[64], v[8];
  for (int i = 0; i < 16; i++)
    w[i] = (unsigned int)s->block[4 * i] << 24 | (unsigned int)s->block[4 * i + 1] << 16 |
           (unsigned int)s->block[4 * i + 2] << 8 | (unsigned int)s->block[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    unsigned int s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    unsigned int s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & 0xffffffffu;
  }
  memcpy(v, s->h, sizeof v);
  for (int i = 0; i < 64; i++) {
    unsigned int e = v[4], a = v[0];
    unsigned int t1 =
        v[7] + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & v[5]) ^ (~e & v[6])) + K[i] + w[i];
    unsigned int t2 =
        (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & v[1]) ^ (a & v[2]) ^ (v[1] & v[2]));
    memmove(v + 1, v, 7 * sizeof *v);
    v[4] = (v[4] + t1) & 0xffffffffu;
    v[0] = (t1 + t2) & 0xffffffffu;
  }
  for (int i = 0; i < 8; i++) s->h[i] = (s->h[i] + v[i]) & 0xffffffffu;
}

void spotify_sha256_init(spotify_sha256 *s) {
  static const unsigned int H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memset(s, 0, sizeof *s);
  memcpy(s->h, H0, sizeof H0);
}

void spotify_sha256_update(spotify_sha256 *s, const void *data, size_t len) {
  const unsigned char *p = data;
  s->bits += (unsigned long long)len * 8;
  while (len > 0) {
    size_t n = 64 - s->fill < len ? 64 - s->fill : len;
    memcpy(s->block + s->fill, p, n);
    s->fill += n;
    p += n;
    len -= n;
    if (s->fill == 64) {
      compress(s);
      s->fill = 0;
    }
  }
}

void spotify_sha256_hex(spotify_sha256 *s, char out[SPOTIFY_DIGEST_HEX]) {
  unsigned long long bits = s->bits;
  unsigned char pad[72] = {0x80};
  size_t n = (s->fill < 56 ? 56 : 120) - s->fill;
  for (int i = 0; i < 8; i++) pad[n + (size_t)i] = (unsigned char)(bits >> (56 - 8 * i));
  spotify_sha256_update(s, pad, n + 8);
  for (int i = 0; i < 8; i++) snprintf(out + 8 * i, 9, "%08x", s->h[i]);
  memset(s, 0, sizeof *s);
}
