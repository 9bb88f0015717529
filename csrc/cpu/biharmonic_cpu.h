// CPU multigrid solver of the biharmonic inpainting system (see csrc/cpu/biharmonic_cpu.cpp).
// Torch-free declaration on raw pointers; the op glue is csrc/ops/biharmonic.cpp.
#pragma once

#include <cstdint>

namespace fastinpaint {
namespace cpu {

struct BhSolveInfo {
  int64_t iterations = 0;          // conjugate-gradient iterations run
  double relative_residual = 0.0;  // max over channels of ||b - A x|| / ||b|| at the end
  int64_t levels = 0;              // multigrid levels (fine level included)
};

// Fills the hole of an image with the solution of the discrete biharmonic equation, by
// multigrid-preconditioned conjugate gradients on the system of the hole pixels.
//   hole [H][W]: non-zero = unknown pixel; image [H][W][C]: the known pixels' values (the hole's
//   are not read); table [81][13]: the 13-point stencil row of each border class
//   (kernels/biharmonic.h: bh_stencil_class, bh_fine_row);
//   x [n][C] (output): the hole pixels' values, in raster order; C >= 1 (solved in groups of
//   kBhMaxChannels channels sharing the hierarchy).
//   Stops when every channel's ||b - A x|| <= rtol ||b||, or after max_iter iterations.
//   nu: Gauss-Seidel sweeps before and after each coarse-grid correction; kcycle_levels: the
//   coarse problems of levels 1..kcycle_levels are solved by two flexible-CG steps (K-cycle),
//   deeper ones by one cycle (0: V-cycle).
// Returns nullptr on success, else a message.
const char* biharmonic_mg_solve(int64_t H, int64_t W, const uint8_t* hole, const double* image, int64_t C,
                                const double* table, double* x, double rtol, int64_t max_iter, int64_t nu,
                                int64_t kcycle_levels, BhSolveInfo* info);

}  // namespace cpu
}  // namespace fastinpaint
