// Declares an op's backend entry points in all three backend namespaces (cpu, cuda, cuda_emu),
// so that FI_BACKEND_CALL (ops/backend.h) can reach any of them. No include guard: used once per
// op header, as
//
//   #define FI_BACKEND_HEADER "kernels/<op>_backend.h"
//   #include "ops/declare_backends.h"
#ifndef FI_BACKEND_HEADER
#error "define FI_BACKEND_HEADER (the op's kernels/<op>_backend.h) before including ops/declare_backends.h"
#endif

#define FI_BACKEND_NS cpu
#include FI_BACKEND_HEADER
#undef FI_BACKEND_NS
#define FI_BACKEND_NS cuda
#include FI_BACKEND_HEADER
#undef FI_BACKEND_NS
#define FI_BACKEND_NS cuda_emu
#include FI_BACKEND_HEADER
#undef FI_BACKEND_NS

#undef FI_BACKEND_HEADER
