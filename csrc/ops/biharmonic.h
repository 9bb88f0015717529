// Biharmonic inpainting's C++ entry point (bound in bindings.cpp; called by
// python/fastinpaint/methods/biharmonic.py).
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

namespace fastinpaint {

// Solves the biharmonic system of the hole pixels by multigrid-preconditioned conjugate gradients
// (csrc/cpu/biharmonic_cpu.cpp).
//   image [H, W, C] float64: known pixels' values (hole values are not read);
//   hole [H, W] bool/uint8: non-zero = pixel to fill (at least one, not all);
//   table [81, 13] float64: the 13-point stencil (diamond |dy| + |dx| <= 2, raster order) of each
//     image-border class (kernels/biharmonic.h: bh_stencil_class). CPU tensors.
// Returns (x [n, C] float64: the hole pixels in raster order, iterations, max relative residual
// over channels, multigrid levels).
std::tuple<at::Tensor, int64_t, double, int64_t> biharmonic_solve(const at::Tensor& image, const at::Tensor& hole,
                                                                  const at::Tensor& table, double rtol,
                                                                  int64_t max_iter, int64_t nu, int64_t kcycle_levels);

}  // namespace fastinpaint
