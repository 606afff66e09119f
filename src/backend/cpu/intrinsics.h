// <immintrin.h> for the CPU kernels' AVX-512 paths (included only where the build targets
// AVX-512). GCC 12's AVX-512 headers fill the unused source of unmasked intrinsics with a
// self-initialised "undefined" vector, which -W(maybe-)uninitialized reports wherever they are
// inlined: a false positive (the value is never read), silenced for the header's text only.
#pragma once
#ifdef __AVX512F__
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif
