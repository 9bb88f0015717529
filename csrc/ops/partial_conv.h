// The fused partial convolution's C++ entry points (bound in bindings.cpp; the Python custom
// op in python/fastinpaint/ops/partial_conv.py adds validation, fake kernels and autograd).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <vector>

namespace fastinpaint {

// Returns {output, updated_mask, masked_input, ratio}; the last two are what backward needs.
//   input [N, C_in, H, W] (contiguous or channels_last), mask [N, S, H, W] with mask_channels[s]
//   input channels per segment (Σ = C_in), weight [C_out, C_in/groups, kH, kW], bias [C_out].
//   conv_channels_last: run the image convolution on channels_last activations (the mask pass
//   writes them so; the epilogue transposes back to the input's layout).
//   input_masked: the caller promises input is already zero where its mask is; if the input is
//   also in the convolution's layout it is used as is and masked_input comes back as a 1-D empty
//   placeholder (backward then takes the input).
//   stream: the CUDA stream handle for CUDA tensors (ignored on the CPU).
std::vector<at::Tensor> partial_conv2d_forward(const at::Tensor& input, const at::Tensor& mask,
                                               at::IntArrayRef mask_channels, const at::Tensor& weight,
                                               const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                               at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                                               bool conv_channels_last, bool input_masked, int64_t stream);

// Returns {grad_input, grad_weight, grad_bias}; undefined where not requested. grad_input is
// laid out channels_last when input_channels_last (the forward input's layout), else NCHW.
std::vector<at::Tensor> partial_conv2d_backward(const at::Tensor& grad_out, const at::Tensor& masked_input,
                                                const at::Tensor& mask, at::IntArrayRef mask_channels,
                                                const at::Tensor& weight, const at::Tensor& ratio,
                                                at::IntArrayRef stride, at::IntArrayRef padding,
                                                at::IntArrayRef dilation, int64_t groups, bool input_channels_last,
                                                bool need_input, bool need_weight, bool need_bias, int64_t stream);

}  // namespace fastinpaint
