// Device-agnostic glue of the fused partial convolution: validation of what the kernels rely on,
// memory layout, allocation, ATen's convolution for the image part, and the calls into the
// backend kernels (CPU loops, CUDA, or CUDA emulated on the CPU).
#include "ops/partial_conv.h"

#include <ATen/ops/convolution.h>
#include <ATen/ops/convolution_backward.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/tensor.h>
#include <c10/core/DeviceGuard.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <numeric>

#include "ops/backend.h"

#define FI_BACKEND_HEADER "kernels/partial_conv_backend.h"
#include "ops/declare_backends.h"

namespace fastinpaint {
namespace {

// NHWC when the caller handed us channels_last activations (no copy), NCHW otherwise.
at::MemoryFormat activation_format(const at::Tensor& t) {
  return (!t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast)) ? at::MemoryFormat::ChannelsLast
                                                                                 : at::MemoryFormat::Contiguous;
}

bool is_cl(at::MemoryFormat fmt) { return fmt == at::MemoryFormat::ChannelsLast; }

ActLayout act_layout(const at::Tensor& t, at::MemoryFormat fmt) {
  return ActLayout{t.size(0), t.size(1), t.size(2) * t.size(3), is_cl(fmt)};
}

at::Tensor empty_in(const at::Tensor& like, at::IntArrayRef sizes, at::MemoryFormat fmt) {
  return at::empty(sizes, like.options().memory_format(fmt));
}

at::ScalarType acc_scalar_type(const at::Tensor& t) {
  return t.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}


// The mask layout (see PConvMaskLayout) as one int64 buffer on the kernels' device: built once by
// the forward and saved for the backward, so that neither rebuilds it nor copies it to the device
// again.
at::Tensor make_mask_layout(at::IntArrayRef mask_channels, int64_t C_in, int64_t groups, const at::Device& device) {
  const int64_t S = static_cast<int64_t>(mask_channels.size());
  std::vector<int64_t> buf(pconv_layout_size(S, groups, C_in));
  int64_t* seg_start = buf.data();
  int64_t* group_first_seg = seg_start + S + 1;
  int64_t* chan_seg = group_first_seg + groups;
  seg_start[0] = 0;
  for (int64_t s = 0; s < S; ++s) {
    TORCH_CHECK_VALUE(mask_channels[s] > 0, "mask_channels must be positive, got ", mask_channels);
    seg_start[s + 1] = seg_start[s] + mask_channels[s];
    for (int64_t c = seg_start[s]; c < seg_start[s + 1] && c < C_in; ++c) chan_seg[c] = s;
  }
  TORCH_CHECK_VALUE(seg_start[S] == C_in, "mask_channels ", mask_channels, " must add up to the input's ", C_in,
                    " channels");
  const int64_t cpg = C_in / groups;
  for (int64_t g = 0, s = 0; g < groups; ++g) {
    while (seg_start[s + 1] <= g * cpg) ++s;
    group_first_seg[g] = s;
  }
  return at::tensor(buf, at::TensorOptions().dtype(at::kLong)).to(device);
}

// The kernels' view of a layout buffer (make_mask_layout) for S mask channels; the buffer must
// stay alive while they run.
PConvMaskLayout mask_layout_view(const at::Tensor& layout, int64_t S, int64_t C_in, int64_t groups) {
  TORCH_CHECK_VALUE(layout.dim() == 1 && layout.scalar_type() == at::kLong &&
                        layout.numel() == pconv_layout_size(S, groups, C_in) && layout.is_contiguous(),
                    "partial_conv2d backward: mask_layout is not the forward's (expected ",
                    pconv_layout_size(S, groups, C_in), " int64 values, got ", layout.sizes(), ")");
  const int64_t* base = layout.const_data_ptr<int64_t>();
  return PConvMaskLayout{base, base + S + 1, base + S + 1 + groups, S, groups, C_in,
                         (S == 1 || groups == 1) ? 1 : groups};
}

void check_common(const at::Tensor& input, const at::Tensor& mask, const at::Tensor& weight, int64_t groups) {
  TORCH_CHECK_VALUE(input.dim() == 4, "partial_conv2d: input must be 4-D (N, C, H, W), got shape ", input.sizes());
  TORCH_CHECK_VALUE(mask.dim() == 4, "partial_conv2d: mask must be 4-D (N, S, H, W), got shape ", mask.sizes());
  TORCH_CHECK_VALUE(weight.dim() == 4, "partial_conv2d: weight must be 4-D (C_out, C_in/groups, kH, kW), got shape ",
                    weight.sizes());
  TORCH_CHECK_VALUE(mask.size(0) == input.size(0) && mask.size(2) == input.size(2) && mask.size(3) == input.size(3),
                    "partial_conv2d: mask shape ", mask.sizes(), " does not match input shape ", input.sizes(),
                    " in N, H or W");
  TORCH_CHECK_VALUE(groups > 0 && input.size(1) % groups == 0 && weight.size(0) % groups == 0,
                    "partial_conv2d: groups=", groups, " must divide input channels ", input.size(1),
                    " and output channels ", weight.size(0));
  TORCH_CHECK_VALUE(weight.size(1) * groups == input.size(1), "partial_conv2d: weight shape ", weight.sizes(),
                    " expects ", weight.size(1) * groups, " input channels, input has ", input.size(1));
  TORCH_CHECK(input.device() == mask.device() && input.device() == weight.device(),
              "partial_conv2d: input, mask and weight must be on one device, got ", input.device(), ", ",
              mask.device(), ", ", weight.device());
  TORCH_CHECK_TYPE(input.scalar_type() == mask.scalar_type() && input.scalar_type() == weight.scalar_type(),
                   "partial_conv2d: input, mask and weight must have one dtype, got ", input.scalar_type(), ", ",
                   mask.scalar_type(), ", ", weight.scalar_type());
}

PConvWindow make_window(const at::Tensor& input, int64_t OH, int64_t OW, at::IntArrayRef kernel,
                        at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation) {
  return PConvWindow{input.size(2), input.size(3), OH, OW,
                     int(kernel[0]), int(kernel[1]), int(stride[0]), int(stride[1]),
                     int(padding[0]), int(padding[1]), int(dilation[0]), int(dilation[1])};
}

}  // namespace

PConvForward partial_conv2d_forward(const at::Tensor& input, const at::Tensor& mask, const at::Tensor& weight,
                                   const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                   at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                                   at::IntArrayRef mask_channels, bool conv_channels_last, bool input_masked) {
  const c10::OptionalDeviceGuard guard(input.device());
  check_common(input, mask, weight, groups);
  TORCH_CHECK_VALUE(static_cast<int64_t>(mask_channels.size()) == mask.size(1), "partial_conv2d: mask has ",
                    mask.size(1), " channels but mask_channels lists ", mask_channels.size(), " segments");
  const bool has_bias = bias.has_value() && bias->defined();
  if (has_bias)
    TORCH_CHECK_VALUE(bias->dim() == 1 && bias->size(0) == weight.size(0), "partial_conv2d: bias shape ",
                      bias->sizes(), " must be (", weight.size(0), ",)");
  const Backend backend = backend_for(input);
  const DType dtype = kernel_dtype(input);
  void* s = current_stream(input);

  const at::MemoryFormat fmt = activation_format(input);
  const at::MemoryFormat conv_fmt = conv_channels_last ? at::MemoryFormat::ChannelsLast : fmt;
  const at::Tensor x = input.contiguous(fmt);
  const at::Tensor m = mask.contiguous();
  const at::Tensor layout = make_mask_layout(mask_channels, input.size(1), groups, input.device());
  const PConvMaskLayout L = mask_layout_view(layout, mask.size(1), input.size(1), groups);

  // An input the caller promises is already masked, in the convolution's layout, is convolved as
  // it is: no masking pass and no input-sized copy (the UNet decoder masks its concatenation in
  // place). Otherwise the mask pass writes the masked copy, transposing if needed.
  const bool reuse_input = input_masked && conv_fmt == fmt && x.is_same(input);
  at::Tensor masked_input = reuse_input ? x : empty_in(x, x.sizes(), conv_fmt);
  if (!reuse_input && x.numel() > 0)
    FI_BACKEND_CALL(backend, pconv_apply_mask, dtype, x.const_data_ptr(), act_layout(x, fmt), m.const_data_ptr(),
                    masked_input.mutable_data_ptr(), is_cl(conv_fmt), L, s);

  const at::Tensor conv = at::convolution(masked_input, weight, std::nullopt, stride, padding, dilation,
                                          /*transposed=*/false, /*output_padding=*/{0, 0}, groups)
                              .contiguous(conv_fmt);
  const int64_t N = conv.size(0), OH = conv.size(2), OW = conv.size(3);
  at::Tensor ratio = at::empty({N, groups, OH, OW}, input.options().dtype(acc_scalar_type(input)));
  at::Tensor new_mask = at::empty({N, L.new_mask_channels, OH, OW}, input.options());
  if (ratio.numel() > 0) {
    const PConvWindow w = make_window(input, OH, OW, weight.sizes().slice(2), stride, padding, dilation);
    FI_BACKEND_CALL(backend, pconv_mask_ratio, dtype, m.const_data_ptr(), L, w, N, ratio.mutable_data_ptr(),
                    new_mask.mutable_data_ptr(), s);
  }
  // In place when the caller's layout is the convolution's; otherwise the epilogue transposes.
  at::Tensor out = conv_fmt == fmt ? conv : empty_in(conv, conv.sizes(), fmt);
  at::Tensor b = has_bias ? bias->contiguous() : at::Tensor();
  if (out.numel() > 0)
    FI_BACKEND_CALL(backend, pconv_forward_epilogue, dtype, conv.const_data_ptr(), act_layout(conv, conv_fmt),
                    out.mutable_data_ptr(), is_cl(fmt), ratio.const_data_ptr(),
                    has_bias ? b.const_data_ptr() : nullptr, groups, s);
  // A reused input is not returned (outputs must not alias inputs): a 1-D placeholder says
  // "backward uses the input itself".
  return {out, new_mask, reuse_input ? at::empty({0}, input.options()) : masked_input, ratio, layout};
}

PConvGrads partial_conv2d_backward(const at::Tensor& grad_out, const at::Tensor& masked_input,
                                  const at::Tensor& mask, const at::Tensor& mask_layout, const at::Tensor& weight,
                                  const at::Tensor& ratio, at::IntArrayRef stride, at::IntArrayRef padding,
                                  at::IntArrayRef dilation, int64_t groups, bool input_channels_last,
                                  std::array<bool, 3> output_mask) {
  const c10::OptionalDeviceGuard guard(grad_out.device());
  const auto [need_input, need_weight, need_bias] = output_mask;
  check_common(masked_input, mask, weight, groups);
  TORCH_CHECK_VALUE(grad_out.dim() == 4 && grad_out.size(0) == masked_input.size(0) &&
                        grad_out.size(1) == weight.size(0) && ratio.size(2) == grad_out.size(2) &&
                        ratio.size(3) == grad_out.size(3),
                    "partial_conv2d backward: grad_out shape ", grad_out.sizes(), " does not match the forward");
  const Backend backend = backend_for(grad_out);
  const DType dtype = kernel_dtype(grad_out);
  void* s = current_stream(grad_out);
  // masked_input is stored in the convolution's layout; grad_input goes back in the caller's.
  const at::MemoryFormat conv_fmt = activation_format(masked_input);
  const at::MemoryFormat input_fmt = input_channels_last ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  const at::MemoryFormat grad_fmt = activation_format(grad_out);
  const at::Tensor go = grad_out.contiguous(grad_fmt);
  const at::Tensor r = ratio.contiguous();

  at::Tensor grad_conv = empty_in(go, go.sizes(), conv_fmt);
  at::Tensor bias_partial;
  if (need_bias) bias_partial = at::empty({go.size(0), go.size(1)}, ratio.options());
  if (go.numel() > 0)
    FI_BACKEND_CALL(backend, pconv_backward_epilogue, dtype, go.const_data_ptr(), act_layout(go, grad_fmt),
                    grad_conv.mutable_data_ptr(), is_cl(conv_fmt), r.const_data_ptr(),
                    need_bias ? bias_partial.mutable_data_ptr() : nullptr, groups, s);

  at::Tensor grad_input, grad_weight, grad_bias;
  if (need_input || need_weight) {
    auto grads = at::convolution_backward(grad_conv, masked_input, weight, std::nullopt, stride, padding, dilation,
                                          /*transposed=*/false, /*output_padding=*/{0, 0}, groups,
                                          {need_input, need_weight, false});
    // oneDNN returns the weight gradient in the activations' layout; hand it back in the weight's.
    if (need_weight) grad_weight = std::get<1>(grads).contiguous(weight.suggest_memory_format());
    if (need_input) {
      // d(X ⊙ M)/dX = M: mask the input gradient with the forward's mask kernel (in place when
      // the layouts agree, else transposing into the caller's layout).
      const at::Tensor grad_masked = std::get<0>(grads).contiguous(conv_fmt);
      grad_input = input_fmt == conv_fmt ? grad_masked : empty_in(grad_masked, grad_masked.sizes(), input_fmt);
      const at::Tensor m = mask.contiguous();
      const PConvMaskLayout L = mask_layout_view(mask_layout, mask.size(1), masked_input.size(1), groups);
      if (grad_input.numel() > 0)
        FI_BACKEND_CALL(backend, pconv_apply_mask, dtype, grad_masked.const_data_ptr(),
                        act_layout(grad_masked, conv_fmt), m.const_data_ptr(), grad_input.mutable_data_ptr(),
                        is_cl(input_fmt), L, s);
    }
  }
  if (need_bias) grad_bias = bias_partial.sum(0).to(grad_out.scalar_type());
  // The schema returns tensors only: an empty one stands for "not requested".
  const auto or_empty = [&](const at::Tensor& g) { return g.defined() ? g : at::empty({0}, grad_out.options()); };
  return {or_empty(grad_input), or_empty(grad_weight), or_empty(grad_bias)};
}

// The schemas: python/fastinpaint/ops/partial_conv.py adds their fake kernels and autograd.
TORCH_LIBRARY_FRAGMENT(fastinpaint, m) {
  m.def(
      "partial_conv2d(Tensor input, Tensor mask, Tensor weight, Tensor? bias, int[] stride, int[] padding, "
      "int[] dilation, int groups, int[] mask_channels, bool conv_channels_last, bool input_masked) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "partial_conv2d_backward(Tensor grad_out, Tensor masked_input, Tensor mask, Tensor mask_layout, "
      "Tensor weight, Tensor ratio, int[] stride, int[] padding, int[] dilation, int groups, "
      "bool input_channels_last, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");
}

// One device-agnostic implementation serves both keys; backend_for() picks the kernels.
TORCH_LIBRARY_IMPL(fastinpaint, CPU, m) {
  m.impl("partial_conv2d", &partial_conv2d_forward);
  m.impl("partial_conv2d_backward", &partial_conv2d_backward);
}
TORCH_LIBRARY_IMPL(fastinpaint, CUDA, m) {
  m.impl("partial_conv2d", &partial_conv2d_forward);
  m.impl("partial_conv2d_backward", &partial_conv2d_backward);
}

}  // namespace fastinpaint
