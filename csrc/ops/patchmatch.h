// PatchMatch's C++ entry points, registered as the ops fastinpaint::nnf, ::vote and
// ::valid_centres (schemas at the end of patchmatch.cpp); python/fastinpaint/ops/patchmatch.py
// adds argument normalisation, docs and fake kernels. CUDA tensors run on the current stream.
#pragma once

#include <ATen/core/Tensor.h>

#include <c10/util/string_view.h>

#include <optional>
#include <tuple>

namespace fastinpaint {

// Nearest-neighbour field from target patches to source patches.
//   target [C, Ht, Wt] float32, source [C, Hs, Ws] float32 (same C, same device)
//   source_valid [Hs, Ws] (non-zero = pixel may be copied; a patch is a source only if all its
//     pixels are valid and it lies inside the source), or instead source_centres [Hs, Ws], the
//     precomputed patchmatch_valid_centres(source_valid, patch_size); target_weight [Ht, Wt] float32,
//   active [Ht, Wt] (non-zero = compute the match), init [Ht, Wt, 2] int32 (y, x; invalid
//   entries are replaced by random centres) — each optional.
//   propagation: "jump" (jump flooding, every backend) or "scan" (scan order, CPU).
//   max_jump: first jump step (0: the largest power of two below max(Ht, Wt)).
// Returns {nnf [Ht, Wt, 2] int32, distance [Ht, Wt] float32}: distance is the weighted SSD over
// the patch's in-image pixels divided by their total weight; inactive pixels: (-1, -1) and inf.
std::tuple<at::Tensor, at::Tensor> patchmatch_nnf(
    const at::Tensor& target, const at::Tensor& source, int64_t patch_size,
    const std::optional<at::Tensor>& source_valid, const std::optional<at::Tensor>& source_centres,
    const std::optional<at::Tensor>& target_weight, const std::optional<at::Tensor>& active,
    const std::optional<at::Tensor>& init, int64_t iterations, c10::string_view propagation, int64_t max_jump,
    int64_t seed);

// Source-centre validity map [Hs, Ws] bool for a source pixel validity map [Hs, Ws].
at::Tensor patchmatch_valid_centres(const at::Tensor& source_valid, int64_t patch_size);

// Voting: {image [C, H, W] float32, total weight [H, W] float32} from source [C, Hs, Ws],
// nnf [H, W, 2] int32, per-patch weight [H, W] (optional) and the mask [H, W] of the pixels to
// vote (optional: all; elsewhere image and total are 0); reduce "mean" (weighted mean of the
// proposals) or "plurality" (the source pixel proposed with the most weight).
std::tuple<at::Tensor, at::Tensor> patchmatch_vote(const at::Tensor& source, const at::Tensor& nnf,
                                                   int64_t patch_size, const std::optional<at::Tensor>& weight,
                                                   const std::optional<at::Tensor>& mask, c10::string_view reduce);

}  // namespace fastinpaint
