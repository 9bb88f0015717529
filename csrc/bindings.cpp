// The one place where fastinpaint's C++ entry points meet Python (module fastinpaint._C).
// Python wraps each of them in a torch.library custom op (python/fastinpaint/ops/).
#include <torch/csrc/utils/pybind.h>

#include "cuda/emulation_registry.h"
#include "ops/backend.h"
#include "kernels/biharmonic_backend.h"
#include "cpu/isa.h"
#include "ops/biharmonic.h"
#include "ops/partial_conv.h"
#include "ops/patchmatch.h"

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

  m.def("partial_conv2d_forward",
        [](const at::Tensor& input, const at::Tensor& mask, std::vector<int64_t> mask_channels,
           const at::Tensor& weight, const std::optional<at::Tensor>& bias, std::vector<int64_t> stride,
           std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups, bool conv_channels_last,
           bool input_masked, int64_t stream) {
          return fastinpaint::partial_conv2d_forward(input, mask, mask_channels, weight, bias, stride, padding,
                                                     dilation, groups, conv_channels_last, input_masked, stream);
        },
        py::arg("input"), py::arg("mask"), py::arg("mask_channels"), py::arg("weight"), py::arg("bias"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        py::arg("conv_channels_last"), py::arg("input_masked"), py::arg("stream") = 0);
  m.def("partial_conv2d_backward",
        [](const at::Tensor& grad_out, const at::Tensor& masked_input, const at::Tensor& mask,
           std::vector<int64_t> mask_channels, const at::Tensor& weight, const at::Tensor& ratio,
           std::vector<int64_t> stride, std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups,
           bool input_channels_last, bool need_input, bool need_weight, bool need_bias, int64_t stream) {
          return fastinpaint::partial_conv2d_backward(grad_out, masked_input, mask, mask_channels, weight, ratio,
                                                      stride, padding, dilation, groups, input_channels_last,
                                                      need_input, need_weight, need_bias, stream);
        },
        py::arg("grad_out"), py::arg("masked_input"), py::arg("mask"), py::arg("mask_channels"), py::arg("weight"),
        py::arg("ratio"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        py::arg("input_channels_last"), py::arg("need_input"), py::arg("need_weight"), py::arg("need_bias"), py::arg("stream") = 0);

  // PatchMatch (python/fastinpaint/ops/patchmatch.py wraps these as custom ops).
  m.def("patchmatch_nnf", &fastinpaint::patchmatch_nnf, py::arg("target"), py::arg("source"), py::arg("patch_size"),
        py::arg("source_valid"), py::arg("target_weight"), py::arg("active"), py::arg("init"), py::arg("iterations"),
        py::arg("propagation"), py::arg("max_jump"), py::arg("seed"), py::arg("stream") = 0);
  m.def("patchmatch_valid_centres", &fastinpaint::patchmatch_valid_centres, py::arg("source_valid"),
        py::arg("patch_size"));
  m.def("patchmatch_vote", &fastinpaint::patchmatch_vote, py::arg("source"), py::arg("nnf"), py::arg("patch_size"),
        py::arg("weight"), py::arg("mask") = py::none(), py::arg("stream") = 0);

  // Biharmonic inpainting's linear solver (python/fastinpaint/methods/biharmonic.py).
  m.def("biharmonic_solve", &fastinpaint::biharmonic_solve, py::arg("image"), py::arg("hole"), py::arg("table"),
        py::arg("tol"), py::arg("max_iter"), py::arg("isa") = "", py::arg("fill") = false, py::arg("out") = py::none(),
        "Multigrid-preconditioned CG for the biharmonic system: (x, known min, known max, iterations, last change, "
        "levels, instruction set); fill=True writes the clipped solution into the image's holes instead, or with out "
        "the filled image into out.");
  m.def("biharmonic_isas", &fastinpaint::cpu::biharmonic_isas,
        "Instruction sets of the biharmonic solver's compiled copies that this CPU runs, oldest first.");
  m.def("cpu_isas", &fastinpaint::cpu::supported_cpu_isa_names,
        "Instruction sets of the per-ISA CPU kernels (biharmonic, PatchMatch) that this CPU runs, oldest first; "
        "the newest runs unless FASTINPAINT_CPU_ISA names another.");
}
