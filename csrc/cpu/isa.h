// Run-time choice of the instruction set of the CPU kernels that are compiled once per
// instruction set (CMakeLists.txt: FASTINPAINT_CPU_ISAS; each copy lives in namespace
// cpu::<isa>). The newest one the CPU supports runs, unless FASTINPAINT_CPU_ISA (or a caller's
// explicit request) names another.
#pragma once

#include <string>
#include <vector>

namespace fastinpaint {
namespace cpu {

enum class CpuIsa { baseline, avx2, avx512 };

const char* cpu_isa_name(CpuIsa isa);

// The instruction sets compiled in and supported by this CPU, oldest first (baseline always).
const std::vector<CpuIsa>& supported_cpu_isas();
std::vector<std::string> supported_cpu_isa_names();

// The instruction set to run: `requested`, or $FASTINPAINT_CPU_ISA when `requested` is null or
// empty, or else the newest supported one. Returns nullptr, or a message when the name is not a
// supported instruction set.
const char* choose_cpu_isa(const char* requested, CpuIsa* chosen);

}  // namespace cpu
}  // namespace fastinpaint
