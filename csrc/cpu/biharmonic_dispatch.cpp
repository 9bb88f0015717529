// Run-time choice of the biharmonic solver's instruction set. biharmonic_cpu.cpp is compiled once
// per instruction set (CMakeLists.txt: FASTINPAINT_BH_ISAS), each copy in its own namespace; its
// loops are written with GCC vectors of the register width, and AVX-512 runs them ~2x faster
// than SSE2. The best one the CPU supports runs, unless FASTINPAINT_CPU_ISA names another.
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/biharmonic_cpu.h"

namespace fastinpaint {
namespace cpu {

#define FASTINPAINT_DECLARE_BH_SOLVE(isa)                                                                    \
  namespace isa {                                                                                            \
  const char* biharmonic_mg_solve(int64_t H, int64_t W, const uint8_t* hole, const double* image, int64_t C, \
                                  const double* table, const BhOutput& out, double tol, int64_t max_iter,    \
                                  BhSolveInfo* info);                                                        \
  }
FASTINPAINT_DECLARE_BH_SOLVE(baseline)
#ifdef FASTINPAINT_BH_AVX2
FASTINPAINT_DECLARE_BH_SOLVE(avx2)
#endif
#ifdef FASTINPAINT_BH_AVX512
FASTINPAINT_DECLARE_BH_SOLVE(avx512)
#endif

namespace {

using Solve = const char* (*)(int64_t, int64_t, const uint8_t*, const double*, int64_t, const double*,
                              const BhOutput&, double, int64_t, BhSolveInfo*);

struct Isa {
  const char* name;
  Solve solve;
  bool supported;
};

std::vector<Isa> isas() {
  std::vector<Isa> out{{"baseline", &baseline::biharmonic_mg_solve, true}};
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
#endif
#ifdef FASTINPAINT_BH_AVX2
  out.push_back({"avx2", &avx2::biharmonic_mg_solve,
                 __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2")});
#endif
#ifdef FASTINPAINT_BH_AVX512
  out.push_back({"avx512", &avx512::biharmonic_mg_solve,
                 __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                     __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
                     __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")});
#endif
  return out;
}

}  // namespace

std::vector<std::string> biharmonic_isas() {
  std::vector<std::string> out;
  for (const Isa& isa : isas())
    if (isa.supported) out.emplace_back(isa.name);
  return out;
}

const char* biharmonic_mg_solve(int64_t H, int64_t W, const uint8_t* hole, const double* image, int64_t C,
                                const double* table, const BhOutput& out, double tol, int64_t max_iter,
                                BhSolveInfo* info, const char* isa) {
  static const std::vector<Isa> all = isas();
  const Isa* chosen = nullptr;
  if (isa == nullptr || *isa == '\0') isa = std::getenv("FASTINPAINT_CPU_ISA");
  if (isa != nullptr && *isa != '\0') {
    for (const Isa& candidate : all)
      if (std::strcmp(candidate.name, isa) == 0 && candidate.supported) chosen = &candidate;
    if (chosen == nullptr) return "unknown or unsupported instruction set (see fastinpaint._C.biharmonic_isas())";
  } else {
    for (const Isa& candidate : all)
      if (candidate.supported) chosen = &candidate;  // listed from the oldest to the newest
  }
  const char* error = chosen->solve(H, W, hole, image, C, table, out, tol, max_iter, info);
  info->isa = chosen->name;
  return error;
}

}  // namespace cpu
}  // namespace fastinpaint
