/* SHA-256, for cache keys that name credentials without revealing them. */
#ifndef SPOTIFY_DIGEST_H
#define SPOTIFY_DIGEST_H

#include <stddef.h>

#define SPOTIFY_DIGEST_HEX 65 /* 64 hex digits and the NUL */

typedef struct spotify_sha256 {
  unsigned int h[8];
  unsigned char block[64];
  size_t fill;
  unsigned long long bits;
} spotify_sha256;

void spotify_sha256_init(spotify_sha256 *s);
void spotify_sha256_update(spotify_sha256 *s, const void *data, size_t len);
/* The digest as lowercase hex into out; s is spent. */
void spotify_sha256_hex(spotify_sha256 *s, char out[SPOTIFY_DIGEST_HEX]);

#endif
