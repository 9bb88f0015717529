// CPU multigrid solver of the biharmonic inpainting system (csrc/cpu/biharmonic/solver.cpp).
// Torch-free declaration on raw pointers; the op glue is csrc/ops/biharmonic.cpp. Here, outside
// csrc/cpu/, so that the op layer and the bindings depend on this interface, not on the backend
// folder. Unlike the other kernels/<op>_backend.h it declares the CPU backend only (namespace
// cpu): the solver has no CUDA counterpart.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fastinpaint {
namespace cpu {

struct BhSolveInfo {
  int64_t iterations = 0;    // conjugate-gradient iterations run (max over channel groups)
  double last_update = 0.0;  // largest change of any value in the last iteration
  int64_t levels = 0;        // multigrid levels (fine level included)
  const char* isa = "";      // instruction set of the copy that ran
};

// What the solver writes: lo[C] and hi[C], each channel's range of known values; and the
// solution: x [n][C], the hole pixels' values in raster order, or, if `image` is set, straight
// into that image's hole pixels ([H][W][C]), each value clipped to its channel's [lo, hi] (as
// scikit-image does: a biharmonic fill can overshoot). `image` may be the input image; any other
// buffer gets the known pixels copied too, by the solver's first pass over the input (which reads
// them anyway), on the intra-op threads: a new output's page faults are shared out.
struct BhOutput {
  double* lo = nullptr;
  double* hi = nullptr;
  double* x = nullptr;
  double* image = nullptr;
};

// Fills the hole of an image with the solution of the discrete biharmonic equation, by
// multigrid-preconditioned conjugate gradients on the system of the hole pixels.
//   hole [H][W]: non-zero = unknown pixel; image [H][W][C]: the known pixels' values (the hole's
//   are not read); table [81][13]: the 13-point stencil row of each border class
//   (kernels/biharmonic.h: bh_stencil_class);
//   out: where the known range and the solution go (BhOutput); C >= 1 (solved in groups of
//   kBhMaxChannels channels sharing the hierarchy).
//   Stops when an iteration changes no value by more than tol times the largest channel range of
//   the known values (1 if they are all constant), or after max_iter iterations;
//   info->last_update is relative in the same way.
//   isa: which compiled copy runs ("baseline", "avx2", "avx512"); null or empty: the
//   FASTINPAINT_CPU_ISA environment variable if set, else the best the CPU supports
//   (csrc/cpu/biharmonic_dispatch.cpp).
// Returns nullptr on success, else a message (a known value that is not finite, for one).
const char* biharmonic_mg_solve(int64_t H, int64_t W, const uint8_t* hole, const double* image, int64_t C,
                                const double* table, const BhOutput& out, double tol, int64_t max_iter,
                                BhSolveInfo* info, const char* isa);

// The instruction sets of the solver's compiled copies that this CPU runs, oldest first.
std::vector<std::string> biharmonic_isas();

}  // namespace cpu
}  // namespace fastinpaint
