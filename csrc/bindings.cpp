// Module fastinpaint._C: loading it registers the ops (torch.ops.fastinpaint.*, whose schemas
// and kernels live in csrc/ops/<op>.cpp); what is bound here are the build's and the process's
// switches, which are not tensor ops.
#include <torch/csrc/utils/pybind.h>

#include "cuda/emulation_registry.h"
#include "ops/backend.h"
#include "kernels/biharmonic_backend.h"
#include "cpu/isa.h"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "fastinpaint C++/CUDA kernels";

  m.attr("built_with_cuda") = fastinpaint::kBuiltWithCuda;
  m.attr("built_with_cuda_emulation") = fastinpaint::kBuiltWithCudaEmulation;
  m.def("set_cuda_emulation", &fastinpaint::set_cuda_emulation, py::arg("enabled"),
        "Run the CUDA kernels, compiled for the CPU, on CPU tensors (testing the GPU code without a GPU).");
  m.def("cuda_emulation_enabled", &fastinpaint::cuda_emulation_enabled);
  m.def("emulated_kernel_launches", &fi_emu_detail::launched_kernels,
        "Names of the CUDA kernels that have run under CPU emulation in this process.");

  m.def("biharmonic_isas", &fastinpaint::cpu::biharmonic_isas,
        "Instruction sets of the biharmonic solver's compiled copies that this CPU runs, oldest first.");
  m.def("cpu_isas", &fastinpaint::cpu::supported_cpu_isa_names,
        "Instruction sets of the per-ISA CPU kernels (biharmonic, PatchMatch) that this CPU runs, oldest first; "
        "the newest runs unless FASTINPAINT_CPU_ISA names another.");
}
