#include "cpu/isa.h"

#include <cstdlib>
#include <cstring>

namespace fastinpaint {
namespace cpu {

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::avx2:
      return "avx2";
    case CpuIsa::avx512:
      return "avx512";
    default:
      return "baseline";
  }
}

const std::vector<CpuIsa>& supported_cpu_isas() {
  static const std::vector<CpuIsa> isas = [] {
    std::vector<CpuIsa> out{CpuIsa::baseline};
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
#endif
#ifdef FASTINPAINT_ISA_AVX2
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
      out.push_back(CpuIsa::avx2);
#endif
#ifdef FASTINPAINT_ISA_AVX512
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
      out.push_back(CpuIsa::avx512);
#endif
    return out;
  }();
  return isas;
}

std::vector<std::string> supported_cpu_isa_names() {
  std::vector<std::string> out;
  for (CpuIsa isa : supported_cpu_isas()) out.emplace_back(cpu_isa_name(isa));
  return out;
}

const char* choose_cpu_isa(const char* requested, CpuIsa* chosen) {
  if (requested == nullptr || *requested == '\0') requested = std::getenv("FASTINPAINT_CPU_ISA");
  const std::vector<CpuIsa>& isas = supported_cpu_isas();
  if (requested == nullptr || *requested == '\0') {
    *chosen = isas.back();
    return nullptr;
  }
  for (CpuIsa isa : isas)
    if (std::strcmp(cpu_isa_name(isa), requested) == 0) {
      *chosen = isa;
      return nullptr;
    }
  return "unknown or unsupported instruction set (see fastinpaint._C.cpu_isas())";
}

}  // namespace cpu
}  // namespace fastinpaint
