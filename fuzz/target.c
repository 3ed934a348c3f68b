/* One libFuzzer target per parser of untrusted input. The binary is built
 * with -DFUZZ_SCRIPT=<name>; fuzz/<name>.lua defines check(data), which
 * feeds the input to the core and raises when an invariant breaks. A raise,
 * an ASan/UBSan report or a crash each make libFuzzer keep the input. */
#include "harness.h"

#define FUZZ_STR2(x) #x
#define FUZZ_STR(x) FUZZ_STR2(x)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_load_script(SPOTIFY_ROOT "/fuzz/" FUZZ_STR(FUZZ_SCRIPT) ".lua");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_check("check", data, size);
  return 0;
}
