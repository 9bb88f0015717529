// Biharmonic inpainting's C++ entry point, registered as the op fastinpaint::biharmonic_solve
// (schema at the end of biharmonic.cpp; called by python/fastinpaint/methods/biharmonic.py).
#pragma once

#include <ATen/core/Tensor.h>

#include <c10/util/string_view.h>

#include <optional>
#include <string>
#include <tuple>

namespace fastinpaint {

// Solves the biharmonic system of the hole pixels by multigrid-preconditioned conjugate gradients
// (csrc/cpu/biharmonic/solver.cpp).
//   image [H, W, C] float64: known pixels' values (hole values are not read);
//   hole [H, W] bool/uint8: non-zero = pixel to fill (at least one, not all);
//   table [81, 13] float64: the 13-point stencil (diamond |dy| + |dx| <= 2, raster order) of each
//     image-border class (kernels/biharmonic.h: bh_stencil_class). CPU tensors.
//   tol: stop when an iteration changes no value by more than tol times the largest channel range
//     of the known values;
//   max_iter: at most this many conjugate-gradient iterations.
//   fill (with out): write the filled image, the solution clipped to each channel's range of
//     known values, into out (float64 (H, W, C), contiguous, its contents ignored) instead of
//     returning the solution.
// Returns (x [n, C] float64: the hole pixels in raster order ([0, C] with fill), lo [C] and hi
// [C]: each channel's range of known values (ValueError if one is not finite), iterations, the
// last iteration's largest change (relative, as tol), multigrid levels, the instruction set that
// ran). isa: see kernels/biharmonic_backend.h ("" = the best this CPU runs).
using BhSolveResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, int64_t, double, int64_t, std::string>;
BhSolveResult biharmonic_solve(const at::Tensor& image, const at::Tensor& hole, const at::Tensor& table, double tol,
                               int64_t max_iter, c10::string_view isa, bool fill, const std::optional<at::Tensor>& out);

}  // namespace fastinpaint
