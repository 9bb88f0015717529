// Entry points every backend of PatchMatch provides, on raw pointers (see kernels/patchmatch.h
// for the layouts and the math).
//
// Deliberately without an include guard: included once per backend namespace
// (FI_BACKEND_NS = cpu, cuda, cuda_emu) so that the CPU loops, the CUDA launchers and their CPU
// emulation share one declaration and the op glue (csrc/ops/patchmatch.cpp) calls any of them
// with the same arguments. Torch-free, so that .cu files can include it.
//
// Every function returns nullptr on success or a message naming what failed. `stream` is a
// cudaStream_t for the CUDA backend and ignored elsewhere.
#include "kernels/macros.h"
#include "kernels/patchmatch.h"

#ifndef FI_BACKEND_NS
#error "define FI_BACKEND_NS (cpu, cuda or cuda_emu) before including kernels/patchmatch_backend.h"
#endif

namespace fastinpaint {
namespace FI_BACKEND_NS {

// Initial field: `init` ([Ht, Wt, 2] int32, or null) where it names a valid centre, else random.
//   nnf: [Ht, Wt, 2] int32, dist: [Ht, Wt] float32 (raw weighted SSD).
const char* pm_init(const PMProblem& problem, const int32_t* init, int32_t* nnf, float* dist, void* stream);

// One jump-flooding pass with the given step: reads (prev, prev_dist), writes (next, next_dist);
// the buffers must not overlap. With `search`, each pixel also runs a random search keyed on
// `iteration`.
const char* pm_jump_pass(const PMProblem& problem, const int32_t* prev, const float* prev_dist, int32_t* next,
                         float* next_dist, int64_t step, bool search, uint32_t iteration, void* stream);

// `iterations` rounds of scan-order propagation + random search, in place, round k forward when
// first_iteration + k is even, backward when odd (the random draws are keyed on it too). CPU only:
// the CUDA backends return an error.
const char* pm_scan(const PMProblem& problem, int32_t* nnf, float* dist, uint32_t first_iteration, int64_t iterations,
                    void* stream);

// Valid centres: out [H, W] = 1 where the patch of radius r centred there lies inside the image
// and on non-zero pixels of valid [H, W] only (pm_valid_centre).
const char* pm_valid_centres(const uint8_t* valid, int64_t H, int64_t W, int r, uint8_t* out, void* stream);

// The distances the ops return: mean [Ht, Wt] from the raw SSDs dist (pm_mean_distance).
const char* pm_mean_distances(const PMProblem& problem, const int32_t* nnf, const float* dist, float* mean,
                              void* stream);

// Voting: out [H, W, C] from source [Hs, Ws, C], nnf [H, W, 2] and per-patch weight [H, W] (or
// null: all 1), combining the proposals as `reduce` says (PMVoteReduce: weighted mean or
// plurality); total [H, W] receives Σ w of each pixel (may be null). Where `mask` [H, W] (or
// null: everywhere) is 0 the pixel is not voted: out and total are 0 there.
const char* pm_vote(const float* source, int64_t Hs, int64_t Ws, int64_t C, const int32_t* nnf, const float* weight,
                    const uint8_t* mask, int64_t H, int64_t W, int r, int reduce, float* out, float* total,
                    void* stream);

}  // namespace FI_BACKEND_NS
}  // namespace fastinpaint
