// The fused partial convolution's C++ entry points, registered as the ops
// fastinpaint::partial_conv2d and fastinpaint::partial_conv2d_backward (schemas at the end of
// partial_conv.cpp); python/fastinpaint/ops/partial_conv.py adds validation, fake kernels and
// autograd.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <optional>
#include <tuple>

namespace fastinpaint {

// {output, updated_mask, masked_input, ratio, mask_layout}; the last three are what backward needs.
using PConvForward = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
// {grad_input, grad_weight, grad_bias}; an empty tensor where not requested.
using PConvGrads = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

//   input [N, C_in, H, W] (contiguous or channels_last), mask [N, S, H, W] with mask_channels[s]
//   input channels per segment (Σ = C_in), weight [C_out, C_in/groups, kH, kW], bias [C_out].
//   conv_channels_last: run the image convolution on channels_last activations (the mask pass
//   writes them so; the epilogue transposes back to the input's layout).
//   input_masked: the caller promises input is already zero where its mask is; if the input is
//   also in the convolution's layout it is used as is and masked_input comes back as a 1-D empty
//   placeholder (backward then takes the input).
//   mask_layout: the segment tables of mask_channels (int64, on the input's device) for backward.
// Runs on the current CUDA stream of the input's device for CUDA tensors.
PConvForward partial_conv2d_forward(const at::Tensor& input, const at::Tensor& mask, const at::Tensor& weight,
                                   const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                   at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                                   at::IntArrayRef mask_channels, bool conv_channels_last, bool input_masked);

// output_mask: which of {grad_input, grad_weight, grad_bias} to compute. grad_input is laid out
// channels_last when input_channels_last (the forward input's layout), else NCHW.
PConvGrads partial_conv2d_backward(const at::Tensor& grad_out, const at::Tensor& masked_input,
                                  const at::Tensor& mask, const at::Tensor& mask_layout, const at::Tensor& weight,
                                  const at::Tensor& ratio, at::IntArrayRef stride, at::IntArrayRef padding,
                                  at::IntArrayRef dilation, int64_t groups, bool input_channels_last,
                                  std::array<bool, 3> output_mask);

}  // namespace fastinpaint
