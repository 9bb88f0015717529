// Device-agnostic glue of PatchMatch: validation, layout (CHW in, HWC for the kernels), the
// valid-centre map, buffers, the iteration schedule, and the calls into the backend kernels
// (CPU loops, CUDA, or CUDA emulated on the CPU).
#include "ops/patchmatch.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/nonzero.h>
#include <ATen/ops/ones.h>
#include <c10/core/DeviceGuard.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <utility>

#include "ops/backend.h"

#define FI_BACKEND_HEADER "kernels/patchmatch_backend.h"
#include "ops/declare_backends.h"

namespace fastinpaint {
namespace {


void check_image(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK_VALUE(t.dim() == 3, op, ": ", name, " must be 3-D (C, H, W), got shape ", t.sizes());
  TORCH_CHECK_TYPE(t.scalar_type() == at::kFloat, op, ": ", name, " must be float32, got ", t.scalar_type());
  TORCH_CHECK_VALUE(t.size(0) > 0 && t.size(1) > 0 && t.size(2) > 0, op, ": ", name, " is empty (shape ", t.sizes(),
                    ")");
}

void check_plane(const at::Tensor& t, const at::Tensor& like, int64_t H, int64_t W, const char* op,
                 const char* name) {
  TORCH_CHECK_VALUE(t.dim() == 2 && t.size(0) == H && t.size(1) == W, op, ": ", name, " must have shape (", H, ", ",
                    W, "), got ", t.sizes());
  TORCH_CHECK(t.device() == like.device(), op, ": ", name, " is on ", t.device(), " but the images are on ",
              like.device());
}

void check_patch_size(int64_t p, const char* op) {
  TORCH_CHECK_VALUE(p >= 1 && p % 2 == 1 && p <= 255, op, ": patch_size must be an odd number in [1, 255], got ", p);
}

// HWC float32 copy (the kernels' layout) of a CHW image.
at::Tensor to_hwc(const at::Tensor& chw) { return chw.permute({1, 2, 0}).contiguous(); }

// The same, followed by kPmLanes floats of zeros: the CPU's patch distance loads a row's last
// terms as one whole register, which may reach past the last pixel.
at::Tensor to_hwc_padded(const at::Tensor& chw) {
  const int64_t C = chw.size(0), H = chw.size(1), W = chw.size(2);
  at::Tensor flat = at::empty({H * W * C + kPmLanes}, chw.options());
  flat.narrow(0, H * W * C, kPmLanes).zero_();
  flat.narrow(0, 0, H * W * C).view({H, W, C}).copy_(chw.permute({1, 2, 0}));
  return flat;
}

// A validity plane as the kernels read it: uint8, non-zero = true. A bool tensor already holds
// 0/1 bytes and is reinterpreted in place (no pass over it); any other dtype is compared with 0.
at::Tensor as_u8_plane(const at::Tensor& t) {
  if (t.scalar_type() == at::kBool) return t.contiguous().view(at::kByte);
  return t.ne(0).to(at::kByte).contiguous();
}

}  // namespace

at::Tensor patchmatch_valid_centres(const at::Tensor& source_valid, int64_t patch_size) {
  const c10::OptionalDeviceGuard guard(source_valid.device());
  check_patch_size(patch_size, "valid_centres");
  TORCH_CHECK_VALUE(source_valid.dim() == 2, "valid_centres: source_valid must be 2-D (H, W), got ",
                    source_valid.sizes());
  const int64_t H = source_valid.size(0), W = source_valid.size(1);
  const at::Tensor v = as_u8_plane(source_valid);
  at::Tensor out = at::empty({H, W}, v.options().dtype(at::kBool));
  if (H * W > 0)
    FI_BACKEND_CALL(backend_for(v), pm_valid_centres, v.const_data_ptr<uint8_t>(), H, W, int(patch_size / 2),
                    static_cast<uint8_t*>(out.mutable_data_ptr()), current_stream(v));
  return out;
}

std::tuple<at::Tensor, at::Tensor> patchmatch_nnf(
    const at::Tensor& target, const at::Tensor& source, int64_t patch_size,
    const std::optional<at::Tensor>& source_valid, const std::optional<at::Tensor>& source_centres,
    const std::optional<at::Tensor>& target_weight, const std::optional<at::Tensor>& active,
    const std::optional<at::Tensor>& init, int64_t iterations, c10::string_view propagation, int64_t max_jump,
    int64_t seed) {
  const c10::OptionalDeviceGuard guard(target.device());
  const char* op = "patchmatch nnf";
  check_image(target, op, "target");
  check_image(source, op, "source");
  check_patch_size(patch_size, op);
  TORCH_CHECK_VALUE(target.size(0) == source.size(0), op, ": target has ", target.size(0), " channels, source has ",
                    source.size(0));
  TORCH_CHECK(target.device() == source.device(), op, ": target is on ", target.device(), ", source on ",
              source.device());
  TORCH_CHECK_VALUE(iterations >= 0, op, ": iterations must be >= 0, got ", iterations);
  TORCH_CHECK_VALUE(propagation == "jump" || propagation == "scan", op,
                    ": propagation must be 'jump' or 'scan', got '", propagation, "'");
  const int64_t C = target.size(0), Ht = target.size(1), Wt = target.size(2);
  const int64_t Hs = source.size(1), Ws = source.size(2);
  TORCH_CHECK_VALUE(Hs >= patch_size && Ws >= patch_size, op, ": the source (", Hs, "x", Ws,
                    ") is smaller than one patch (", patch_size, "x", patch_size, ")");
  TORCH_CHECK_VALUE(Ht * Wt < (int64_t(1) << 31) && Hs * Ws < (int64_t(1) << 31), op,
                    ": images of 2^31 pixels or more are not supported");

  const Backend backend = backend_for(target);
  void* s = current_stream(target);
  const at::Tensor A = to_hwc_padded(target);
  const at::Tensor B = source.is_same(target) ? A : to_hwc_padded(source);

  // The centres whose patch lies on valid pixels: given by a caller that matches against one
  // source region many times (computed once there), else computed here.
  const bool has_valid = source_valid.has_value() && source_valid->defined();
  at::Tensor valid;
  if (source_centres.has_value() && source_centres->defined()) {
    TORCH_CHECK_VALUE(!has_valid, op, ": pass source_valid or source_centres, not both");
    check_plane(*source_centres, source, Hs, Ws, op, "source_centres");
    valid = as_u8_plane(*source_centres);
  } else if (has_valid) {
    check_plane(*source_valid, source, Hs, Ws, op, "source_valid");
    valid = as_u8_plane(patchmatch_valid_centres(*source_valid, patch_size));
  } else {
    valid = as_u8_plane(patchmatch_valid_centres(at::ones({Hs, Ws}, source.options().dtype(at::kByte)), patch_size));
  }
  const at::Tensor valid_list = at::nonzero(valid.reshape({-1})).reshape({-1}).to(at::kInt).contiguous();
  const int64_t n_valid = valid_list.size(0);
  TORCH_CHECK_VALUE(n_valid > 0, op, ": no source patch of size ", patch_size, "x", patch_size,
                    " lies fully inside the valid source region; there is nothing to match against");

  at::Tensor weight, act, init_t;
  if (target_weight.has_value() && target_weight->defined()) {
    check_plane(*target_weight, target, Ht, Wt, op, "target_weight");
    TORCH_CHECK_TYPE(target_weight->scalar_type() == at::kFloat, op, ": target_weight must be float32, got ",
                     target_weight->scalar_type());
    weight = target_weight->contiguous();
  }
  if (active.has_value() && active->defined()) {
    check_plane(*active, target, Ht, Wt, op, "active");
    act = as_u8_plane(*active);
  }
  if (init.has_value() && init->defined()) {
    TORCH_CHECK_VALUE(init->dim() == 3 && init->size(0) == Ht && init->size(1) == Wt && init->size(2) == 2, op,
                      ": init must have shape (", Ht, ", ", Wt, ", 2), got ", init->sizes());
    TORCH_CHECK_TYPE(init->scalar_type() == at::kInt, op, ": init must be int32, got ", init->scalar_type());
    TORCH_CHECK(init->device() == target.device(), op, ": init is on ", init->device(), " but target on ",
                target.device());
    init_t = init->contiguous();
  }

  const PMProblem P{A.const_data_ptr<float>(),
                    B.const_data_ptr<float>(),
                    weight.defined() ? weight.const_data_ptr<float>() : nullptr,
                    act.defined() ? act.const_data_ptr<uint8_t>() : nullptr,
                    valid.const_data_ptr<uint8_t>(),
                    valid_list.const_data_ptr<int32_t>(),
                    n_valid,
                    C,
                    Ht,
                    Wt,
                    Hs,
                    Ws,
                    int(patch_size / 2),
                    static_cast<uint64_t>(seed)};

  const auto int_opts = target.options().dtype(at::kInt);
  at::Tensor nnf = at::empty({Ht, Wt, 2}, int_opts);
  at::Tensor dist = at::empty({Ht, Wt}, target.options());
  FI_BACKEND_CALL(backend, pm_init, P, init_t.defined() ? init_t.const_data_ptr<int32_t>() : nullptr,
                  nnf.mutable_data_ptr<int32_t>(), dist.mutable_data_ptr<float>(), s);

  if (propagation == "scan") {
    FI_BACKEND_CALL(backend, pm_scan, P, nnf.mutable_data_ptr<int32_t>(), dist.mutable_data_ptr<float>(), 0u,
                    iterations, s);
  } else {
    // Jump flooding: steps n/2, n/4, ..., 1 in every iteration, random search in the last pass.
    int64_t first = 1;
    while (first * 2 < std::max(Ht, Wt)) first *= 2;
    if (max_jump > 0) first = std::min(first, max_jump);
    at::Tensor nnf2 = at::empty_like(nnf), dist2 = at::empty_like(dist);
    for (int64_t it = 0; it < iterations; ++it) {
      for (int64_t step = first; step >= 1; step /= 2) {
        FI_BACKEND_CALL(backend, pm_jump_pass, P, nnf.const_data_ptr<int32_t>(), dist.const_data_ptr<float>(),
                        nnf2.mutable_data_ptr<int32_t>(), dist2.mutable_data_ptr<float>(), step, step == 1,
                        uint32_t(it), s);
        std::swap(nnf, nnf2);
        std::swap(dist, dist2);
      }
    }
  }

  at::Tensor mean = at::empty_like(dist);
  FI_BACKEND_CALL(backend, pm_mean_distances, P, nnf.const_data_ptr<int32_t>(), dist.const_data_ptr<float>(),
                  mean.mutable_data_ptr<float>(), s);
  return {nnf, mean};
}

std::tuple<at::Tensor, at::Tensor> patchmatch_vote(const at::Tensor& source, const at::Tensor& nnf,
                                                   int64_t patch_size, const std::optional<at::Tensor>& weight,
                                                   const std::optional<at::Tensor>& mask, c10::string_view reduce) {
  const c10::OptionalDeviceGuard guard(source.device());
  const char* op = "patchmatch vote";
  int reduce_mode = kPmVoteMean;
  if (reduce == "plurality")
    reduce_mode = kPmVotePlurality;
  else
    TORCH_CHECK_VALUE(reduce == "mean", op, ": reduce must be 'mean' or 'plurality', got '", reduce, "'");
  check_image(source, op, "source");
  check_patch_size(patch_size, op);
  TORCH_CHECK_VALUE(nnf.dim() == 3 && nnf.size(2) == 2, op, ": nnf must have shape (H, W, 2), got ", nnf.sizes());
  TORCH_CHECK_TYPE(nnf.scalar_type() == at::kInt, op, ": nnf must be int32, got ", nnf.scalar_type());
  TORCH_CHECK(nnf.device() == source.device(), op, ": nnf is on ", nnf.device(), ", source on ", source.device());
  const int64_t C = source.size(0), Hs = source.size(1), Ws = source.size(2), H = nnf.size(0), W = nnf.size(1);
  at::Tensor w;
  if (weight.has_value() && weight->defined()) {
    check_plane(*weight, source, H, W, op, "weight");
    TORCH_CHECK_TYPE(weight->scalar_type() == at::kFloat, op, ": weight must be float32, got ",
                     weight->scalar_type());
    w = weight->contiguous();
  }
  at::Tensor m;
  if (mask.has_value() && mask->defined()) {
    check_plane(*mask, source, H, W, op, "mask");
    m = as_u8_plane(*mask);
  }
  const Backend backend = backend_for(source);
  const at::Tensor B = to_hwc(source);
  const at::Tensor n = nnf.contiguous();
  at::Tensor out = at::empty({H, W, C}, source.options());
  at::Tensor total = at::empty({H, W}, source.options());
  if (H * W > 0)
    FI_BACKEND_CALL(backend, pm_vote, B.const_data_ptr<float>(), Hs, Ws, C, n.const_data_ptr<int32_t>(),
                    w.defined() ? w.const_data_ptr<float>() : nullptr,
                    m.defined() ? m.const_data_ptr<uint8_t>() : nullptr, H, W, int(patch_size / 2), reduce_mode,
                    out.mutable_data_ptr<float>(), total.mutable_data_ptr<float>(), current_stream(source));
  return {out.permute({2, 0, 1}).contiguous(), total};
}

// The schemas: python/fastinpaint/ops/patchmatch.py adds their fake kernels. Not differentiable.
TORCH_LIBRARY_FRAGMENT(fastinpaint, m) {
  m.def(
      "nnf(Tensor target, Tensor source, int patch_size, Tensor? source_valid, Tensor? source_centres, "
      "Tensor? target_weight, Tensor? active, Tensor? init, int iterations, str propagation, int max_jump, "
      "int seed) -> (Tensor, Tensor)");
  m.def(
      "vote(Tensor source, Tensor field, int patch_size, Tensor? weight, Tensor? mask, str reduce=\"mean\") -> "
      "(Tensor, Tensor)");
  m.def("valid_centres(Tensor source_valid, int patch_size) -> Tensor");
}

// One device-agnostic implementation serves both keys; backend_for() picks the kernels.
TORCH_LIBRARY_IMPL(fastinpaint, CPU, m) {
  m.impl("nnf", &patchmatch_nnf);
  m.impl("vote", &patchmatch_vote);
  m.impl("valid_centres", &patchmatch_valid_centres);
}
TORCH_LIBRARY_IMPL(fastinpaint, CUDA, m) {
  m.impl("nnf", &patchmatch_nnf);
  m.impl("vote", &patchmatch_vote);
  m.impl("valid_centres", &patchmatch_valid_centres);
}

}  // namespace fastinpaint
