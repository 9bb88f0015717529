// Entry points every backend of the fused partial convolution provides, on raw pointers.
//
// Deliberately without an include guard: it is included once per backend namespace
// (FI_BACKEND_NS = cpu, cuda, cuda_emu), so that the CPU loops, the CUDA launchers and their
// CPU emulation share one declaration and the op glue (csrc/ops/partial_conv.cpp) can call any of
// them with the same arguments. Torch-free, so that .cu files can include it.
//
// Every function returns nullptr on success or a message naming what failed. `stream` is a
// cudaStream_t for the CUDA backend and ignored elsewhere. Pointers are typed by `dtype`:
//   x, out, mask, new_mask, bias, grad_out, grad_conv: dtype
//   ratio, bias_partial: acc_t<dtype> (float, or double for Float64)
#include "kernels/macros.h"
#include "kernels/partial_conv.h"

#ifndef FI_BACKEND_NS
#error "define FI_BACKEND_NS (cpu, cuda or cuda_emu) before including kernels/partial_conv_backend.h"
#endif

namespace fastinpaint {
namespace FI_BACKEND_NS {

// Activations are described by an ActLayout (C channels, P = H*W pixels). Where a function takes
// a layout for its input and a `*_channels_last` flag for its output, it may transpose while it
// computes; when the two layouts agree, output and input may be the same buffer (in place).

// out = x ⊙ M, each input channel taking the mask plane of its segment.
//   x: laid out as x_act (C = C_in, P = H*W); out: same shape, channels_last or not;
//   mask: [N, S, H, W]
const char* pconv_apply_mask(DType dtype, const void* x, ActLayout x_act, const void* mask, void* out,
                             bool out_channels_last, PConvMaskLayout layout, void* stream);

// ratio [N, G, OH, OW] and new_mask [N, new_mask_channels, OH, OW] from mask [N, S, H, W].
const char* pconv_mask_ratio(DType dtype, const void* mask, PConvMaskLayout layout, PConvWindow window,
                             int64_t N, void* ratio, void* new_mask, void* stream);

// out = ratio > 0 ? conv * ratio + bias : 0, from the bias-free conv output (C = C_out,
// P = OH*OW). `bias` may be null.
const char* pconv_forward_epilogue(DType dtype, const void* conv, ActLayout conv_act, void* out,
                                   bool out_channels_last, const void* ratio, const void* bias, int64_t groups,
                                   void* stream);

// grad_conv = grad_out * ratio; if bias_partial is not null, bias_partial[n, c] = Σ_p grad_out
// over the pixels with ratio > 0 (the bias gradient is its sum over n).
const char* pconv_backward_epilogue(DType dtype, const void* grad_out, ActLayout grad_act, void* grad_conv,
                                    bool grad_conv_channels_last, const void* ratio, void* bias_partial,
                                    int64_t groups, void* stream);

}  // namespace FI_BACKEND_NS
}  // namespace fastinpaint
