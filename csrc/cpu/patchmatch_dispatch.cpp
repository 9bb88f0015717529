// The CPU backend's PatchMatch entry points (kernels/patchmatch_backend.h, namespace cpu): each
// forwards to the copy of csrc/cpu/patchmatch_cpu.cpp compiled for the instruction set that
// cpu/isa.h chooses. Every copy computes the same fields, bit for bit.
#include "cpu/isa.h"

#define FI_BACKEND_NS cpu
#include "kernels/patchmatch_backend.h"
#undef FI_BACKEND_NS
#define FI_BACKEND_NS cpu::baseline
#include "kernels/patchmatch_backend.h"
#undef FI_BACKEND_NS
#ifdef FASTINPAINT_ISA_AVX2
#define FI_BACKEND_NS cpu::avx2
#include "kernels/patchmatch_backend.h"
#undef FI_BACKEND_NS
#endif
#ifdef FASTINPAINT_ISA_AVX512
#define FI_BACKEND_NS cpu::avx512
#include "kernels/patchmatch_backend.h"
#undef FI_BACKEND_NS
#endif

// Calls fn of the chosen instruction set's copy.
#define FI_PM_FORWARD(fn, ...)                                        \
  CpuIsa isa;                                                         \
  if (const char* error = choose_cpu_isa(nullptr, &isa)) return error; \
  switch (isa) {                                                      \
    FI_PM_CASE_AVX512(fn, __VA_ARGS__)                                \
    FI_PM_CASE_AVX2(fn, __VA_ARGS__)                                  \
    default:                                                          \
      return baseline::fn(__VA_ARGS__);                               \
  }
#ifdef FASTINPAINT_ISA_AVX512
#define FI_PM_CASE_AVX512(fn, ...) \
  case CpuIsa::avx512:             \
    return avx512::fn(__VA_ARGS__);
#else
#define FI_PM_CASE_AVX512(fn, ...)
#endif
#ifdef FASTINPAINT_ISA_AVX2
#define FI_PM_CASE_AVX2(fn, ...) \
  case CpuIsa::avx2:             \
    return avx2::fn(__VA_ARGS__);
#else
#define FI_PM_CASE_AVX2(fn, ...)
#endif

namespace fastinpaint {
namespace cpu {

const char* pm_init(const PMProblem& P, const int32_t* init, int32_t* nnf, float* dist, void* stream) {
  FI_PM_FORWARD(pm_init, P, init, nnf, dist, stream)
}

const char* pm_jump_pass(const PMProblem& P, const int32_t* prev, const float* prev_dist, int32_t* next,
                         float* next_dist, int64_t step, bool search, uint32_t iteration, void* stream) {
  FI_PM_FORWARD(pm_jump_pass, P, prev, prev_dist, next, next_dist, step, search, iteration, stream)
}

const char* pm_scan(const PMProblem& P, int32_t* nnf, float* dist, uint32_t first_iteration, int64_t iterations,
                    void* stream) {
  FI_PM_FORWARD(pm_scan, P, nnf, dist, first_iteration, iterations, stream)
}

const char* pm_valid_centres(const uint8_t* valid, int64_t H, int64_t W, int r, uint8_t* out, void* stream) {
  FI_PM_FORWARD(pm_valid_centres, valid, H, W, r, out, stream)
}

const char* pm_mean_distances(const PMProblem& P, const int32_t* nnf, const float* dist, float* mean, void* stream) {
  FI_PM_FORWARD(pm_mean_distances, P, nnf, dist, mean, stream)
}

const char* pm_vote(const float* source, int64_t Hs, int64_t Ws, int64_t C, const int32_t* nnf, const float* weight,
                    const uint8_t* mask, int64_t H, int64_t W, int r, int reduce, float* out, float* total,
                    void* stream) {
  FI_PM_FORWARD(pm_vote, source, Hs, Ws, C, nnf, weight, mask, H, W, r, reduce, out, total, stream)
}

}  // namespace cpu
}  // namespace fastinpaint
