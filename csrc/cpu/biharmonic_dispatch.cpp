// Run-time choice of the biharmonic solver's instruction set (cpu/isa.h). biharmonic/solver.cpp is
// compiled once per instruction set, each copy in its own namespace; its loops are written with
// GCC vectors of the register width, and AVX-512 runs them ~2x faster than SSE2.
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/biharmonic_backend.h"
#include "cpu/isa.h"

namespace fastinpaint {
namespace cpu {

#define FASTINPAINT_DECLARE_BH_SOLVE(isa)                                                                    \
  namespace isa {                                                                                            \
  const char* biharmonic_mg_solve(int64_t H, int64_t W, const uint8_t* hole, const double* image, int64_t C, \
                                  const double* table, const BhOutput& out, double tol, int64_t max_iter,    \
                                  BhSolveInfo* info);                                                        \
  }
FASTINPAINT_DECLARE_BH_SOLVE(baseline)
#ifdef FASTINPAINT_ISA_AVX2
FASTINPAINT_DECLARE_BH_SOLVE(avx2)
#endif
#ifdef FASTINPAINT_ISA_AVX512
FASTINPAINT_DECLARE_BH_SOLVE(avx512)
#endif

std::vector<std::string> biharmonic_isas() { return supported_cpu_isa_names(); }

const char* biharmonic_mg_solve(int64_t H, int64_t W, const uint8_t* hole, const double* image, int64_t C,
                                const double* table, const BhOutput& out, double tol, int64_t max_iter,
                                BhSolveInfo* info, const char* isa) {
  CpuIsa chosen;
  if (const char* error = choose_cpu_isa(isa, &chosen)) return error;
  const char* error = nullptr;
  switch (chosen) {
#ifdef FASTINPAINT_ISA_AVX512
    case CpuIsa::avx512:
      error = avx512::biharmonic_mg_solve(H, W, hole, image, C, table, out, tol, max_iter, info);
      break;
#endif
#ifdef FASTINPAINT_ISA_AVX2
    case CpuIsa::avx2:
      error = avx2::biharmonic_mg_solve(H, W, hole, image, C, table, out, tol, max_iter, info);
      break;
#endif
    default:
      error = baseline::biharmonic_mg_solve(H, W, hole, image, C, table, out, tol, max_iter, info);
  }
  info->isa = cpu_isa_name(chosen);  // after the solve, which resets *info
  return error;
}

}  // namespace cpu
}  // namespace fastinpaint
